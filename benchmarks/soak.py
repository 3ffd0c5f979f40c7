"""Soak test: a real ``fashionrec serve`` on 127.0.0.1 under concurrent good and hostile traffic, killed and restarted.

    nice -n 19 .venv/bin/python benchmarks/soak.py [--index-dir DIR] [--clients 4] [--seconds 60] [--bad-share 0.4]
        [--restarts 0] [--warmup-seconds 10]

Without ``--index-dir`` the demo catalogue is indexed first (``--model``, default the production one) into a
temporary folder. N client threads then loop until the time is up, each request drawn (seeded) from a mix of good
photo uploads, catalogue reads (item, similar, image) and bad requests (empty, truncated, text-as-JPEG, TIFF, PNG
bomb, oversized upload through httpx and through urllib, which sends the whole body before reading, malformed
multipart, hostile ids, a body and headers dribbled slower than the server's timeouts). With ``--restarts N`` the
run is cut into N+1 equal parts and the server is killed with SIGKILL (mid-traffic) and restarted between them;
requests refused while it is down, or cut by the kill (no answer, and a kill happened while the request was out:
recorded per request), are counted apart as "server down", not as errors. The good mix also has feedback queries
(``like`` / ``unlike`` of catalogue ids returned by earlier answers, ``differ=baseColour``, ``box``), item writes
(PUT of a new product with a photo and metadata, PATCH, DELETE, with the server's ``FASHIONREC_API_KEY``) and
``POST /admin/reload``. Every acknowledged write is remembered; after each restart and at the end, with the clients
paused, each written product is fetched: a live one must answer 200 with its last acknowledged metadata, a deleted
one 404. Anything else is a lost write (must be 0). A write cut by a kill is unacknowledged and no longer checked.

Reported: requests and status codes per kind, 5xx count (must be 0), connection errors outside the restart
windows (must be 0), p50/p99 latency, and each server process's RSS after its warm-up (``--warmup-seconds`` of
traffic) and at its end: growth must stay under 10 %. Prints a table, writes benchmarks/results/soak.json,
exits 1 on any 5xx, connection error, unexpected status or RSS growth of 10 % or more.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from fashionrec.config import env_default
from fashionrec.indexing import index_catalog
from fashionrec.modelspec import ModelSpec

REPO = Path(__file__).resolve().parents[1]
DEMO_CATALOG = REPO / "demo" / "catalog"
DEMO_QUERIES = REPO / "demo" / "queries"
SHARED = Path(os.environ.get("FASHIONREC_SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = Path(__file__).resolve().parent / "results" / "soak.json"
MAX_UPLOAD_MB = 2  # the server's limit in this run: the oversized upload is just over it
SLOW_TIMEOUT_S = 3  # the server's --body-timeout and --header-timeout in this run
CLOSED = 0  # pseudo status: the server closed the connection without an answer (expected for slow headers)
CONNECTION_ERROR = -1  # pseudo status: no answer while the server was up (a failure)
SERVER_DOWN = -2  # pseudo status: no answer while the server was being killed and restarted (expected)
API_KEY = "soak-test-key-0123456789abcdefghi"[:32]  # a fixed 32-character test key for the server process
WRITE_COLUMNS = ("gender", "articleType", "baseColour", "productDisplayName")
COLOURS = ("Red", "Blue", "Black", "White", "Green", "Navy Blue", "Grey")
Request = Callable[[httpx.Client, random.Random], int]
EXPECTED = {"write:put": {201}, "write:patch": {200, 201}, "write:delete": {204, 201},  # 201: no live product of its own yet, so a PUT
            "hostile:slow-headers": {CLOSED}, "hostile:slow-body": {408}}
"""Kinds whose answer is a specific pseudo status or code; others: good kinds 200, bad kinds any 4xx."""


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def _photos() -> list[bytes]:
    """Real shopper-style photos: the demo queries, plus up to 20 real clothing photos when the shared data is here."""
    paths = sorted(DEMO_QUERIES.glob("*.jpg")) + sorted((SHARED / "clothing-photos" / "test").glob("*/*.jpg"))[:20]
    return [p.read_bytes() for p in paths]


def _urllib_upload(base: str, data: bytes) -> int:
    """Upload ``data`` with urllib, which sends the whole body before it reads the answer; the status."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.jpg\"\r\n\r\n").encode() \
        + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{base}/api/recommend", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)
    except OSError:
        return CONNECTION_ERROR


def _dribble(base: str, head: bytes, drip: bytes) -> int:
    """Send ``head``, then ``drip`` a byte every 0.1 s until the server answers or closes: its status, or CLOSED."""
    host, port = base.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=60) as sock:
            sock.sendall(head)
            for byte in drip:
                if select.select([sock], [], [], 0.1)[0]:
                    break
                sock.sendall(bytes([byte]))
            answer = sock.recv(64)
    except ConnectionResetError:
        return CLOSED
    except OSError:
        return CONNECTION_ERROR
    if not answer:
        return CLOSED
    return int(answer.split(b" ")[1]) if answer.startswith(b"HTTP/1.1 ") else CONNECTION_ERROR


class Ledger:
    """Catalogue ids seen in answers (for feedback queries) and every acknowledged write, per writing thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[str] = []
        self.acked: dict[str, dict[str, str] | None] = {}  # id -> last acknowledged metadata, None: deleted
        self.owner: dict[str, int] = {}
        self.unacknowledged = 0

    def remember(self, response: httpx.Response) -> int:
        """Keep the catalogue ids of an answer (never the soak's own, which may be deleted); its status."""
        if response.status_code == 200:
            ids = [r["id"] for r in response.json().get("results", []) if not r["id"].startswith("soak-")]
            with self.lock:
                self.seen = (self.seen + ids)[-500:]
        return response.status_code

    def pick_seen(self, r: random.Random, n: int, fallback: list[str]) -> list[str]:
        with self.lock:
            pool = list(dict.fromkeys(self.seen)) if len(set(self.seen)) >= n else fallback
        return r.sample(pool, n)

    def live_own(self) -> list[str]:
        me = threading.get_ident()
        with self.lock:
            return [i for i, m in self.acked.items() if m is not None and self.owner[i] == me]

    def write(self, item_id: str, send: Callable[[], httpx.Response], ok: int, meta: dict[str, str] | None) -> int:
        """Send a write; remember it when acknowledged with ``ok``; forget the id when it got no answer."""
        try:
            response = send()
        except httpx.HTTPError:
            with self.lock:  # no answer: it may or may not have happened, so it is no longer checked
                self.acked.pop(item_id, None)
                self.unacknowledged += 1
            raise
        if response.status_code == ok:
            with self.lock:
                self.acked[item_id] = meta
                self.owner[item_id] = threading.get_ident()
        return response.status_code

    def check(self, base: str) -> dict[str, Any]:
        """Fetch every acknowledged write (clients paused): lost ones are any other answer."""
        with self.lock:
            acked = dict(self.acked)
        lost: list[str] = []
        with httpx.Client(base_url=base, timeout=60, headers={"X-API-Key": API_KEY}) as c:
            for item_id, meta in acked.items():
                response = c.get(f"/api/items/{item_id}")
                if meta is None:
                    ok = response.status_code == 404
                else:
                    ok = response.status_code == 200 and all(
                        response.json()["metadata"].get(k) == v for k, v in meta.items())
                if not ok:
                    lost.append(item_id)
        return {"live": sum(m is not None for m in acked.values()), "deleted": sum(m is None for m in acked.values()),
                "lost": len(lost), "lost_ids": lost[:20]}


def build_mix(item_ids: list[str], base: str, ledger: Ledger) -> dict[str, tuple[bool, Request]]:
    """name -> (is a good request, how to send it)."""
    photos = _photos()
    first = photos[0]
    bad_bodies = {
        "bad:empty": b"",
        "bad:truncated-jpeg": first[: len(first) // 2],
        "bad:text-as-jpeg": b"<html><body>not a photo</body></html>",
        "bad:tiff": _encode(Image.new("RGB", (64, 64)), "TIFF"),
        "bad:png-bomb": _encode(Image.new("1", (12_000, 12_000)), "PNG"),
        "bad:oversized": first + bytes(MAX_UPLOAD_MB * 1024 * 1024),
    }

    def upload(data: bytes) -> Request:
        return lambda c, r: c.post("/api/recommend", files={"file": ("x.jpg", data, "image/jpeg")},
                                   params={"k": r.choice([5, 10, 50])}).status_code

    mix: dict[str, tuple[bool, Request]] = {
        "good:recommend": (True, lambda c, r: upload(r.choice(photos))(c, r)),
        "good:recommend-filtered": (True, lambda c, r: c.post(
            "/api/recommend", files={"file": ("x.jpg", r.choice(photos), "image/jpeg")},
            params={"k": 10, "filter": r.choice(["gender=Women", "gender=Men", "baseColour=Blue,Black"])}).status_code),
        "good:similar": (True, lambda c, r: c.get(f"/api/items/{r.choice(item_ids)}/similar",
                                                  params={"k": 10}).status_code),
        "good:image": (True, lambda c, r: c.get(f"/images/{r.choice(item_ids)}").status_code),
    }

    def feedback_recommend(c: httpx.Client, r: random.Random) -> int:
        like, unlike = ledger.pick_seen(r, 2, item_ids)
        params: dict[str, Any] = {"k": 10, "like": like, "unlike": unlike}
        if r.random() < 0.5:
            params["differ"] = "baseColour"
        if r.random() < 0.3:
            params["box"] = "0.1,0.1,0.8,0.8"
        return ledger.remember(c.post("/api/recommend", params=params,
                                      files={"file": ("x.jpg", r.choice(photos), "image/jpeg")}))

    def feedback_similar(c: httpx.Client, r: random.Random) -> int:
        item, like, unlike = ledger.pick_seen(r, 3, item_ids)
        params = {"k": 10, "like": like, "unlike": unlike} if r.random() < 0.5 else {"k": 10, "differ": "baseColour"}
        return ledger.remember(c.get(f"/api/items/{item}/similar", params=params))

    def put(c: httpx.Client, r: random.Random) -> int:
        item_id = f"soak-{uuid.uuid4().hex[:12]}"
        meta = {"gender": r.choice(["Men", "Women"]), "articleType": "Tshirts", "baseColour": r.choice(COLOURS),
                "productDisplayName": f"Soak product {item_id}"}
        return ledger.write(item_id, lambda: c.put(f"/api/items/{item_id}", headers={"X-API-Key": API_KEY}, data=meta,
                                                   files={"file": ("x.jpg", r.choice(photos), "image/jpeg")}), 201, meta)

    def patch(c: httpx.Client, r: random.Random) -> int:
        live = ledger.live_own()
        if not live:
            return put(c, r)
        item_id = r.choice(live)
        with ledger.lock:
            meta = {**(ledger.acked[item_id] or {}), "baseColour": r.choice(COLOURS),
                    "productDisplayName": f"Soak product {item_id} patched {uuid.uuid4().hex[:6]}"}
        change = {k: meta[k] for k in ("baseColour", "productDisplayName")}
        return ledger.write(item_id, lambda: c.patch(f"/api/items/{item_id}", headers={"X-API-Key": API_KEY},
                                                     data=change), 200, meta)

    def delete(c: httpx.Client, r: random.Random) -> int:
        live = ledger.live_own()
        if len(live) < 3:  # keep a few live products per client
            return put(c, r)
        item_id = r.choice(live)
        return ledger.write(item_id, lambda: c.delete(f"/api/items/{item_id}", headers={"X-API-Key": API_KEY}),
                            204, None)

    mix["good:feedback-recommend"] = (True, feedback_recommend)
    mix["good:feedback-similar"] = (True, feedback_similar)
    mix["write:put"] = (True, put)
    mix["write:patch"] = (True, patch)
    mix["write:delete"] = (True, delete)
    mix["admin:reload"] = (True, lambda c, r: c.post("/admin/reload", headers={"X-API-Key": API_KEY}).status_code)
    for name, body in bad_bodies.items():
        mix[name] = (False, upload(body))
    mix["bad:oversized-urllib"] = (False, lambda c, r: _urllib_upload(base, first + bytes(3 * MAX_UPLOAD_MB * 1024 * 1024)))
    mix["bad:malformed-multipart"] = (False, lambda c, r: c.post(
        "/api/recommend", content=b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc",
        headers={"Content-Type": "multipart/form-data; boundary=b"}).status_code)
    mix["bad:hostile-id"] = (False, lambda c, r: c.get(r.choice(
        ["/images/..%2F..%2Fetc%2Fpasswd", "/api/items/%00", "/api/items/x/similar?k=0",
         "/images/" + "x" * 3000])).status_code)
    part = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.jpg\"\r\n\r\n" + first + b"\r\n--b--\r\n"
    slow_body = (f"POST /api/recommend HTTP/1.1\r\nHost: soak\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                 f"Content-Length: {len(part)}\r\n\r\n").encode()
    mix["hostile:slow-body"] = (False, lambda c, r: _dribble(base, slow_body, part[:600]))
    mix["hostile:slow-headers"] = (False, lambda c, r: _dribble(
        base, b"GET /healthz HTTP/1.1\r\nHost: soak\r\n", b"X-Slow: " + b"a" * 600))
    return mix


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(index_dir: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "fashionrec", "serve", "--index-dir", str(index_dir), "--host", "127.0.0.1",
           "--port", str(port), "--max-upload-mb", str(MAX_UPLOAD_MB), "--body-timeout", str(SLOW_TIMEOUT_S),
           "--header-timeout", str(SLOW_TIMEOUT_S)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", "FASHIONREC_API_KEY": API_KEY})
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode} before answering")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("the server did not answer /healthz within 180 s")


class Server:
    """The server process under test, killed with SIGKILL and restarted on the same port on request."""

    def __init__(self, index_dir: Path, port: int) -> None:
        self.index_dir, self.port = index_dir, port
        self.down = threading.Event()  # set while the server is being killed and restarted
        self.kills = 0  # SIGKILLs sent so far: a request during which it changed may have been cut by one
        self.proc = start_server(index_dir, port)

    def kill_and_restart(self) -> float:
        """SIGKILL now, mid-traffic; start again; the seconds it was down."""
        self.down.set()
        began = time.monotonic()
        self.kills += 1
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = start_server(self.index_dir, self.port)
        self.down.clear()
        return time.monotonic() - began

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def soak(base: str, mix: dict[str, tuple[bool, Request]], clients: int, seconds: float, bad_share: float,
         seed: int, server: Server, restarts: int, warmup_s: float, ledger: Ledger
         ) -> tuple[dict[str, list[tuple[int, float, bool]]], list[dict[str, Any]], list[float], list[dict[str, Any]]]:
    """Run the clients for ``seconds`` of server up-time, killing the server ``restarts`` times; per-kind (status,
    latency s, whether a kill happened during it), one RSS record per server process (after its warm-up and at its
    end, with samples every ~2 s), the seconds each restart took, and the write check after each restart and at the end."""
    good = [n for n, (ok, _) in mix.items() if ok]
    weights = [0.25 if n == "admin:reload" else 1.0 for n in good]  # a reload reopens the index: rarer
    bad = [n for n, (ok, _) in mix.items() if not ok]
    records: dict[str, list[tuple[int, float, bool]]] = defaultdict(list)
    lock = threading.Lock()
    paused = threading.Event()  # set while the acknowledged writes are checked
    busy = [threading.Lock() for _ in range(clients)]  # held by each client while its request is out
    start = time.monotonic()
    stop = threading.Event()

    def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        with httpx.Client(base_url=base, timeout=60) as c:
            while not stop.is_set():
                if paused.is_set():
                    time.sleep(0.05)
                    continue
                name = (rng.choice(bad) if rng.random() < bad_share else rng.choices(good, weights)[0])
                with busy[n]:
                    was_down, kills = server.down.is_set(), server.kills
                    began = time.perf_counter()
                    try:
                        status = mix[name][1](c, rng)
                    except httpx.HTTPError:
                        status = CONNECTION_ERROR
                    killed = was_down or server.down.is_set() or server.kills != kills
                if status in (CONNECTION_ERROR, CLOSED) and killed:  # refused, or cut by the kill: server down
                    status = SERVER_DOWN
                with lock:
                    records[name].append((status, time.perf_counter() - began, killed))
                if status == SERVER_DOWN:
                    time.sleep(0.2)

    def check_writes(when: str) -> None:
        paused.set()
        for b in busy:  # wait for every request out to finish
            b.acquire()
        try:
            checks.append({"when": when, **ledger.check(base)})
        finally:
            for b in busy:
                b.release()
            paused.clear()

    processes: list[dict[str, Any]] = []
    downtimes: list[float] = []
    checks: list[dict[str, Any]] = []
    part = seconds / (restarts + 1)
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, n) for n in range(clients)]
        for n in range(restarts + 1):
            began = time.monotonic()
            pid, samples = server.proc.pid, []
            warm = None
            while time.monotonic() < began + part and not any(f.done() for f in futures):
                samples.append((round(time.monotonic() - start, 1), rss_kib(pid)))
                if warm is None and time.monotonic() - began >= warmup_s:
                    warm = samples[-1][1]
                time.sleep(2)
            end = rss_kib(pid)
            warm = warm if warm is not None else samples[0][1]
            processes.append({"process": n + 1, "rss_after_warmup_mib": round(warm / 1024, 1),
                              "rss_end_mib": round(end / 1024, 1),
                              "rss_growth_pct": round(100 * (end - warm) / warm, 1),
                              "rss_samples_mib": [(t, round(k / 1024, 1)) for t, k in samples]})
            if n < restarts:
                downtimes.append(round(server.kill_and_restart(), 1))
                check_writes(f"after restart {n + 1}")
        stop.set()
        for f in futures:
            f.result()
    check_writes("at the end")
    return records, processes, downtimes, checks


def percentile_ms(latencies: list[float], q: float) -> float:
    return round(float(np.percentile(latencies, q)) * 1000, 1) if latencies else float("nan")


def unexpected(name: str, good: bool, status: int) -> bool:
    if status == SERVER_DOWN:
        return False
    if name in EXPECTED:
        return status not in EXPECTED[name]
    return status != 200 if good else not 400 <= status < 500


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path, help="index to serve (default: index the demo catalogue first)")
    parser.add_argument("--model", default=env_default("FASHIONREC_MODEL"), help="model for the demo index")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--bad-share", type=float, default=0.4, help="share of bad requests (default: %(default)s)")
    parser.add_argument("--restarts", type=int, default=0, help="SIGKILL and restart the server this many times")
    parser.add_argument("--warmup-seconds", type=float, default=10,
                        help="traffic each server process gets before its RSS baseline (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="soak", help="results file name; --bad-share 0 --name http_load is the "
                        "plain HTTP load benchmark (default: %(default)s)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        index_dir = args.index_dir
        if index_dir is None:
            index_dir = Path(tmp) / "index"
            index_catalog(DEMO_CATALOG, index_dir, model=ModelSpec(args.model))
        from fashionrec.catalog_db import open_db

        with open_db(index_dir) as db:
            item_ids = [item.id for item in db.iter_items()]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        ledger = Ledger()
        mix = build_mix(item_ids, base, ledger)
        server = Server(index_dir, port)
        try:
            with httpx.Client(base_url=base, timeout=60) as c:  # warm-up: first inferences allocate their buffers
                for _ in range(10):
                    mix["good:recommend"][1](c, random.Random(0))
            records, processes, downtimes, checks = soak(base, mix, args.clients, args.seconds, args.bad_share,
                                                         args.seed, server, args.restarts, args.warmup_seconds, ledger)
            healthy = httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        finally:
            server.stop()

    rows = []
    for name in sorted(records):
        statuses = Counter(s for s, _, _ in records[name])
        latencies = [t for s, t, _ in records[name] if s != SERVER_DOWN]
        rows.append({"kind": name, "requests": len(records[name]), "statuses": dict(sorted(statuses.items())),
                     "p50_ms": percentile_ms(latencies, 50), "p99_ms": percentile_ms(latencies, 99)})
    all_records = [r for rs in records.values() for r in rs]
    good_latencies = [t for n, rs in records.items() if mix[n][0] for s, t, _ in rs if s != SERVER_DOWN]
    upload_latencies = [t for n, rs in records.items() if n.startswith("good:recommend") for s, t, _ in rs
                        if s != SERVER_DOWN]
    server_errors = sum(1 for s, _, _ in all_records if s >= 500)
    connection_errors = sum(1 for s, _, _ in all_records if s == CONNECTION_ERROR)
    refused_while_down = sum(1 for s, _, _ in all_records if s == SERVER_DOWN)
    during_kill = sum(1 for _, _, k in all_records if k)
    wrong_status = {n: sum(1 for s, _, _ in records[n] if unexpected(n, mix[n][0], s)) for n in records}
    lost_writes = max(c["lost"] for c in checks)
    max_growth = max(p["rss_growth_pct"] for p in processes)
    summary: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.python_version()}",
        "index_items": len(item_ids), "index_dir": "demo catalogue" if args.index_dir is None else str(args.index_dir),
        "model": args.model if args.index_dir is None else "as recorded in the index",
        "clients": args.clients, "seconds": args.seconds, "bad_share": args.bad_share, "seed": args.seed,
        "restarts": args.restarts, "restart_downtime_s": downtimes, "warmup_seconds": args.warmup_seconds,
        "server_limits": {"max_upload_mb": MAX_UPLOAD_MB, "body_timeout_s": SLOW_TIMEOUT_S,
                          "header_timeout_s": SLOW_TIMEOUT_S},
        "requests": len(all_records), "requests_per_s": round(len(all_records) / args.seconds, 1),
        "server_errors_5xx": server_errors, "connection_errors": connection_errors,
        "refused_while_restarting": refused_while_down, "requests_during_a_kill": during_kill,
        "acknowledged_writes_lost": lost_writes, "unacknowledged_writes": ledger.unacknowledged,
        "write_checks": checks,
        "unexpected_status": {n: c for n, c in wrong_status.items() if c},
        "good_p50_ms": percentile_ms(good_latencies, 50), "good_p99_ms": percentile_ms(good_latencies, 99),
        "upload_p50_ms": percentile_ms(upload_latencies, 50), "upload_p99_ms": percentile_ms(upload_latencies, 99),
        "rss_max_growth_pct": max_growth, "processes": processes,
        "healthy_after": healthy, "kinds": rows,
    }

    print(f"{'kind':<26}{'requests':>9}  {'p50 ms':>8}{'p99 ms':>9}  statuses")
    for row in rows:
        print(f"{row['kind']:<26}{row['requests']:>9}  {row['p50_ms']:>8}{row['p99_ms']:>9}  {row['statuses']}")
    print(f"\n{summary['requests']} requests in {args.seconds:.0f} s from {args.clients} clients "
          f"({summary['requests_per_s']}/s); good requests p50 {summary['good_p50_ms']} ms, "
          f"p99 {summary['good_p99_ms']} ms; photo uploads p50 {summary['upload_p50_ms']} ms, "
          f"p99 {summary['upload_p99_ms']} ms")
    print(f"5xx: {server_errors}, connection errors: {connection_errors}, refused while restarting: "
          f"{refused_while_down} ({args.restarts} SIGKILL restarts, down {downtimes} s), unexpected statuses: "
          f"{summary['unexpected_status'] or 'none'}; healthy after: {healthy}")
    for check in checks:
        print(f"writes checked {check['when']}: {check['live']} live, {check['deleted']} deleted, "
              f"{check['lost']} lost")
    for proc in processes:
        print(f"server process {proc['process']}: RSS {proc['rss_after_warmup_mib']} MiB after warm-up -> "
              f"{proc['rss_end_mib']} MiB at its end ({proc['rss_growth_pct']:+} %)")
    results = RESULTS.with_name(f"{args.name}.json")
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(summary, indent=1) + "\n")
    failed = server_errors or connection_errors or lost_writes or summary["unexpected_status"] or not healthy or max_growth >= 10
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
