"""Soak test: a real ``fashionrec serve`` on 127.0.0.1 under concurrent good and bad traffic for a fixed time.

    nice .venv/bin/python benchmarks/soak.py [--index-dir DIR] [--clients 4] [--seconds 60] [--bad-share 0.4]

Without ``--index-dir`` the demo catalogue is indexed first (``--model``, default the production one) into a
temporary folder. N client threads then loop until the time is up, each request drawn (seeded) from a mix of good
photo uploads, catalogue reads (item, similar, image) and bad requests (empty, truncated, text-as-JPEG, TIFF, PNG
bomb, oversized upload, malformed multipart, hostile ids). Reported: requests and status codes per kind, 5xx count
(must be 0), connection errors (must be 0), p50/p99 latency, and the server's RSS after warm-up, sampled during the
run and at the end (memory must stay flat). Prints a table, writes benchmarks/results/soak.json, exits 1 on any 5xx.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
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
Request = Callable[[httpx.Client, random.Random], httpx.Response]


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def _photos() -> list[bytes]:
    """Real shopper-style photos: the demo queries, plus up to 20 real clothing photos when the shared data is here."""
    paths = sorted(DEMO_QUERIES.glob("*.jpg")) + sorted((SHARED / "clothing-photos" / "test").glob("*/*.jpg"))[:20]
    return [p.read_bytes() for p in paths]


def build_mix(item_ids: list[str]) -> dict[str, tuple[bool, Request]]:
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
                                   params={"k": r.choice([5, 10, 50])})

    mix: dict[str, tuple[bool, Request]] = {
        "good:recommend": (True, lambda c, r: upload(r.choice(photos))(c, r)),
        "good:recommend-filtered": (True, lambda c, r: c.post(
            "/api/recommend", files={"file": ("x.jpg", r.choice(photos), "image/jpeg")},
            params={"k": 10, "filter": r.choice(["gender=Women", "gender=Men", "baseColour=Blue,Black"])})),
        "good:similar": (True, lambda c, r: c.get(f"/api/items/{r.choice(item_ids)}/similar", params={"k": 10})),
        "good:image": (True, lambda c, r: c.get(f"/images/{r.choice(item_ids)}")),
    }
    for name, body in bad_bodies.items():
        mix[name] = (False, upload(body))
    mix["bad:malformed-multipart"] = (False, lambda c, r: c.post(
        "/api/recommend", content=b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc",
        headers={"Content-Type": "multipart/form-data; boundary=b"}))
    mix["bad:hostile-id"] = (False, lambda c, r: c.get(r.choice(
        ["/images/..%2F..%2Fetc%2Fpasswd", "/api/items/%00", "/api/items/x/similar?k=0", "/images/" + "x" * 3000])))
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
           "--port", str(port), "--max-upload-mb", str(MAX_UPLOAD_MB)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
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


def soak(base: str, mix: dict[str, tuple[bool, Request]], clients: int, seconds: float, bad_share: float,
         seed: int, pid: int) -> tuple[dict[str, list[tuple[int, float]]], list[tuple[float, int]]]:
    """Run the clients; returns per-kind (status, latency s) and the server RSS sampled every ~2 s."""
    good = [n for n, (ok, _) in mix.items() if ok]
    bad = [n for n, (ok, _) in mix.items() if not ok]
    records: dict[str, list[tuple[int, float]]] = defaultdict(list)
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + seconds

    def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        with httpx.Client(base_url=base, timeout=60) as c:
            while time.monotonic() < deadline:
                name = rng.choice(bad if rng.random() < bad_share else good)
                began = time.perf_counter()
                try:
                    status = mix[name][1](c, rng).status_code
                except httpx.HTTPError:
                    status = -1  # connection error: the server did not answer
                with lock:
                    records[name].append((status, time.perf_counter() - began))

    samples: list[tuple[float, int]] = []
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, n) for n in range(clients)]
        while not all(f.done() for f in futures):
            samples.append((round(time.monotonic() - start, 1), rss_kib(pid)))
            time.sleep(2)
        for f in futures:
            f.result()
    return records, samples


def percentile_ms(latencies: list[float], q: float) -> float:
    return round(float(np.percentile(latencies, q)) * 1000, 1) if latencies else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path, help="index to serve (default: index the demo catalogue first)")
    parser.add_argument("--model", default=env_default("FASHIONREC_MODEL"), help="model for the demo index")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--bad-share", type=float, default=0.4, help="share of bad requests (default: %(default)s)")
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
        mix = build_mix(item_ids)
        port = free_port()
        server = start_server(index_dir, port)
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=60) as c:  # warm-up: first inferences allocate their buffers
                for _ in range(10):
                    mix["good:recommend"][1](c, random.Random(0))
            rss_before = rss_kib(server.pid)
            records, samples = soak(base, mix, args.clients, args.seconds, args.bad_share, args.seed, server.pid)
            rss_after = rss_kib(server.pid)
            healthy = httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        finally:
            server.terminate()
            server.wait(timeout=30)

    rows = []
    for name in sorted(records):
        statuses = Counter(s for s, _ in records[name])
        latencies = [t for _, t in records[name]]
        rows.append({"kind": name, "requests": len(latencies), "statuses": dict(sorted(statuses.items())),
                     "p50_ms": percentile_ms(latencies, 50), "p99_ms": percentile_ms(latencies, 99)})
    all_records = [r for rs in records.values() for r in rs]
    good_latencies = [t for n, rs in records.items() if mix[n][0] for _, t in rs]
    server_errors = sum(1 for s, _ in all_records if s >= 500)
    connection_errors = sum(1 for s, _ in all_records if s < 0)
    wrong_status = {n: sum(1 for s, _ in records[n] if (s != 200) == mix[n][0]) for n in records}
    summary: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.python_version()}",
        "index_items": len(item_ids), "index_dir": "demo catalogue" if args.index_dir is None else str(args.index_dir),
        "model": args.model if args.index_dir is None else "as recorded in the index",
        "clients": args.clients, "seconds": args.seconds, "bad_share": args.bad_share, "seed": args.seed,
        "requests": len(all_records), "requests_per_s": round(len(all_records) / args.seconds, 1),
        "server_errors_5xx": server_errors, "connection_errors": connection_errors,
        "unexpected_status": {n: c for n, c in wrong_status.items() if c},
        "good_p50_ms": percentile_ms(good_latencies, 50), "good_p99_ms": percentile_ms(good_latencies, 99),
        "rss_before_mib": round(rss_before / 1024, 1), "rss_after_mib": round(rss_after / 1024, 1),
        "rss_growth_mib": round((rss_after - rss_before) / 1024, 1),
        "rss_samples_mib": [(t, round(k / 1024, 1)) for t, k in samples],
        "healthy_after": healthy, "kinds": rows,
    }

    print(f"{'kind':<26}{'requests':>9}  {'p50 ms':>8}{'p99 ms':>9}  statuses")
    for row in rows:
        print(f"{row['kind']:<26}{row['requests']:>9}  {row['p50_ms']:>8}{row['p99_ms']:>9}  {row['statuses']}")
    print(f"\n{summary['requests']} requests in {args.seconds:.0f} s from {args.clients} clients "
          f"({summary['requests_per_s']}/s); good requests p50 {summary['good_p50_ms']} ms, "
          f"p99 {summary['good_p99_ms']} ms")
    print(f"5xx: {server_errors}, connection errors: {connection_errors}, unexpected statuses: "
          f"{summary['unexpected_status'] or 'none'}; healthy after: {healthy}")
    print(f"server RSS: {summary['rss_before_mib']} MiB after warm-up -> {summary['rss_after_mib']} MiB at the end "
          f"({summary['rss_growth_mib']:+} MiB)")
    results = RESULTS.with_name(f"{args.name}.json")
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(summary, indent=1) + "\n")
    return 1 if server_errors or connection_errors or not healthy else 0


if __name__ == "__main__":
    sys.exit(main())
