"""Writes while serving, at catalogue scale (issue 27): a real ``fashionrec serve`` over a copy of an existing index,
one client querying without pause while another writes products one after another.

    nice -n 5 .venv/bin/python benchmarks/live_writes.py --index-dir INDEX --photos DIR --label hnsw-8k \
        [--store milvus] [--puts 40] [--deletes 10] [--idle-queries 300]

``INDEX`` is copied into a temporary folder first (it is never changed); with ``--store milvus`` the copy is
published into a Milvus Lite file beside it. ``DIR`` holds the photos of the new products (``*.jpg``, taken in name
order; photos that are not in the index, so that "first for its own photo" means something). Measured:

- query latency (``GET /api/items/{id}/similar?k=10``, over a fixed rotation of catalogue products) from one client
  (a process of its own) with nothing else running (idle, before the writes and again after them: the idle p99 is
  taken over both), beside 80 photo queries and no write (a control: what the photo embeddings of the writes and
  of their checks cost the queries on this machine), and while the writes run: p50, p99, max, failed;
- ``PUT /api/items/{id}`` (one photo, photo embedding included), one after another: p50, p99, max, and whether the
  product is first for its own photo at once (``POST /api/recommend`` with that photo, k=1, right after the answer);
- ``DELETE /api/items/{id}`` of catalogue products: p50, p99, and whether they are gone at once;
- the server's resident memory before and after the writes;
- SIGKILL of the server right after the last write, a restart (time until it answers), and whether every product
  written is there and first for its own photo, and every deleted one still gone.

Prints the numbers and writes benchmarks/results/live_writes_<label>.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import RESULTS_DIR, machine, rss_mib
from _http import KEY, call, free_port, multipart


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ms = np.array(values) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "max_ms": round(float(ms.max()), 1)}


def first_for(base: str, photo: bytes) -> str | None:
    """The id the server ranks first for ``photo``."""
    body, headers = multipart(photo, {})
    status, answer = call(f"{base}/api/recommend?k=1", "POST", body, headers)
    if status != 200:
        return None
    results = json.loads(answer)["results"]
    return results[0]["id"] if results else None


class Server:
    def __init__(self, args: list[str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # kind steering off: the written products carry a made-up articleType ("Bench") that no garment class
        # names, and what is measured here is the write path, not the steering (docs/look.md)
        env = {**os.environ, "FASHIONREC_API_KEY": KEY, "HF_HUB_OFFLINE": "1", "FASHIONREC_STEER_KIND": "0"}
        self.started = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, "-m", "fashionrec", "serve", "--port", str(self.port), *args],
                                        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 900
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fashionrec serve exited with {self.process.returncode}")
            try:
                if call(f"{self.base}/healthz", timeout=5)[0] == 200:
                    break
            except OSError:
                time.sleep(0.3)
        self.ready_s = time.perf_counter() - self.started

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


def query_client(base: str, rotation: list[str], count: int | None = None,
                 stop: Any = None) -> list[tuple[float, bool]]:
    """``GET /api/items/{id}/similar?k=10`` over ``rotation``, one after another: (seconds, answered 200) each."""
    out: list[tuple[float, bool]] = []
    for n in range(20):  # warm
        call(f"{base}/api/items/{rotation[n % len(rotation)]}/similar?k=10")
    n = 0
    while (count is None or n < count) and (stop is None or not stop.is_set()):
        t0 = time.perf_counter()
        try:
            status, _ = call(f"{base}/api/items/{rotation[n % len(rotation)]}/similar?k=10")
        except OSError:
            status = 0
        out.append((time.perf_counter() - t0, status == 200))
        n += 1
    return out


def query_process(base: str, rotation: list[str], stop: Any, answers: Any, count: int | None = None) -> None:
    """The querying client, in a process of its own (so the writing client's work never delays its timings)."""
    answers.put(query_client(base, rotation, count, stop))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--store", choices=["faiss", "milvus"], default="faiss")
    parser.add_argument("--puts", type=int, default=40)
    parser.add_argument("--deletes", type=int, default=10)
    parser.add_argument("--idle-queries", type=int, default=300)
    parser.add_argument("--work", type=Path, help="folder for the copy (default: a temporary one, removed after)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="live-writes-", dir=args.work))
    index = work / "index"
    shutil.copytree(args.index_dir, index, ignore=shutil.ignore_patterns("milvus*.db", "uploads"))
    serve = ["--index-dir", str(index)]
    if args.store == "milvus":
        uri = str(work / "milvus.db")
        # in a process of its own: a Milvus Lite file can be open in one process only (then the server's)
        publish = ("import sys; from fashionrec.head import load_head; from fashionrec.index import Index; "
                   "from fashionrec.publish import publish_to_milvus; db, m = Index.open_database(sys.argv[1]); "
                   "print(publish_to_milvus(db, sys.argv[2], m, head=load_head(sys.argv[1], m)).summary())")
        subprocess.run([sys.executable, "-c", publish, str(index), uri], check=True)
        serve += ["--store", "milvus", "--milvus-uri", uri]

    photos = sorted(args.photos.glob("*.jpg"))[: args.puts]
    data = [p.read_bytes() for p in photos]
    from fashionrec.catalog_db import CatalogDB

    db = CatalogDB(index)
    catalogue = [item.id for item in db.iter_items()]
    db.close()
    from fashionrec.stores.faiss_store import INDEX_FILE, read_file

    kind = "milvus (FLAT)" if args.store == "milvus" else read_file(index / INDEX_FILE, payload=False)[0]["kind"]
    rotation = catalogue[:: max(1, len(catalogue) // 200)][:200]
    doomed = [i for i in catalogue[1::97] if i not in rotation][: args.deletes]
    server = Server(serve)
    load_start = os.getloadavg()[0]  # the machine is shared: how busy it was is part of the result
    result: dict[str, object] = {"machine": machine(), "label": args.label, "store": args.store,
                                 "products": len(catalogue), "index_kind": kind, "started_s": round(server.ready_s, 1)}
    try:
        base = server.base

        idle_answers: multiprocessing.Queue = multiprocessing.Queue()
        idle_client = multiprocessing.Process(target=query_process,
                                              args=(base, rotation, None, idle_answers, args.idle_queries))
        idle_client.start()
        idle = idle_answers.get(timeout=600)
        idle_client.join()
        rss_before = rss_mib(server.process.pid)
        # control: the same client beside the same photos sent as queries (embedded the same way), with no write,
        # to tell what a write costs the queries apart from what one more photo embedding costs a 2-core machine
        stop = multiprocessing.Event()
        answers: multiprocessing.Queue = multiprocessing.Queue()
        client = multiprocessing.Process(target=query_process, args=(base, rotation, stop, answers))
        client.start()
        try:
            time.sleep(1.0)
            for photo in data:
                first_for(base, photo)
                first_for(base, photo)
            time.sleep(1.0)
        finally:
            stop.set()
            control = answers.get(timeout=120)
            client.join()
        stop = multiprocessing.Event()
        answers: multiprocessing.Queue = multiprocessing.Queue()
        client = multiprocessing.Process(target=query_process, args=(base, rotation, stop, answers))
        client.start()
        put_latencies, first, put_failed, new_ids = [], 0, 0, []
        delete_latencies, gone = [], 0
        try:
            time.sleep(1.0)
            for n, photo in enumerate(data):
                item_id = f"live-{n}"
                body, headers = multipart(photo, {"articleType": "Bench"})
                t0 = time.perf_counter()
                status, _ = call(f"{base}/api/items/{item_id}", "PUT", body, {**headers, "X-API-Key": KEY})
                put_latencies.append(time.perf_counter() - t0)
                put_failed += status not in (200, 201)
                new_ids.append(item_id)
                first += first_for(base, photo) == item_id
            for item_id in doomed:
                t0 = time.perf_counter()
                status, _ = call(f"{base}/api/items/{item_id}", "DELETE", headers={"X-API-Key": KEY})
                delete_latencies.append(time.perf_counter() - t0)
                gone += status == 204 and call(f"{base}/api/items/{item_id}")[0] == 404
            time.sleep(1.0)
        finally:
            stop.set()
            during = answers.get(timeout=120)
            client.join()
        rss_after = rss_mib(server.process.pid)
        idle_client = multiprocessing.Process(target=query_process,
                                              args=(base, rotation, None, idle_answers, args.idle_queries))
        idle_client.start()  # idle again after the writes: the idle p99 is taken over both rounds
        idle_after = idle_answers.get(timeout=600)
        idle_client.join()
        server.kill()
        server = Server(serve)
        there = sum(first_for(server.base, photo) == item_id for item_id, photo in zip(new_ids, data))
        still_gone = sum(call(f"{server.base}/api/items/{i}")[0] == 404 for i in doomed)
        similar_ok = all(call(f"{server.base}/api/items/{i}/similar?k=10")[0] == 200 for i in new_ids[:5])
        idle_before = [t for t, _ in idle]
        idle = idle + idle_after
        idle_lat = [t for t, _ in idle]
        during_lat = [t for t, _ in during]
        result.update({
            "queries_idle": {"count": len(idle), "failed": sum(not ok for _, ok in idle), **percentiles(idle_lat),
                             "p99_ms_before_and_after_writes": [percentiles(idle_before)["p99_ms"],
                                                                percentiles([t for t, _ in idle_after])["p99_ms"]]},
            "queries_during_writes": {"count": len(during), "failed": sum(not ok for _, ok in during),
                                      **percentiles(during_lat)},
            "queries_beside_photo_queries_no_writes": {
                "count": len(control), "failed": sum(not ok for _, ok in control),
                **percentiles([t for t, _ in control])},
            "p99_during_over_idle": round(float(np.percentile(during_lat, 99) / np.percentile(idle_lat, 99)), 2),
            "put": {"count": len(data), "failed": put_failed, **percentiles(put_latencies),
                    "first_for_own_photo_at_once": first},
            "delete": {"count": len(doomed), **percentiles(delete_latencies), "gone_at_once": gone},
            "server_rss_mib_before_and_after_writes": [rss_before, rss_after],
            "load_average_1min_start_end": [round(load_start, 1), round(os.getloadavg()[0], 1)],
            "after_sigkill": {"restart_s": round(server.ready_s, 1), "written_first_for_own_photo": there,
                              "deleted_still_gone": still_gone, "similar_answers": similar_ok},
        })
    finally:
        server.stop()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"live_writes_{args.label}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
