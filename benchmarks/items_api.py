"""The items API and the swap, measured against a real ``fashionrec serve`` (issue 17).

    nice -n 19 .venv/bin/python benchmarks/items_api.py [--products 300] [--puts 40] [--queries 300] [--model NAME]

Indexes the first ``--products`` products of the demo catalogue into a temporary folder, starts ``fashionrec serve``
on it with an API key, then measures:

- ``PUT /api/items/{id}``, one client, one after another (``--puts`` products, each a catalogue photo under a new
  id): products added per second, the latency of each PUT (which is the time from PUT to searchable: the answer
  comes when the product is committed and in the index), and whether the very next query finds it;
- query latency (``GET /api/items/{id}/similar``) from one client, with no swap, then while another thread asks
  ``POST /admin/reload`` without pause (the worst case of a refresh: a new Recommender opened and swapped in back
  to back): p50, p99, max and failed requests, in two rounds, with the server's resident memory before and after
  each round (it must not keep growing with the number of swaps).

Prints the numbers and writes benchmarks/results/items_api.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from _common import REPO, RESULTS_DIR, machine, rss_mib
from _http import KEY, call, free_port, multipart
from fashionrec.indexing import index_catalog
from fashionrec.modelspec import ModelSpec


def percentiles(values: list[float]) -> dict[str, float]:
    ms = np.array(values) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "max_ms": round(float(ms.max()), 1)}


def query_loop(base: str, item_id: str, count: int) -> tuple[list[float], int]:
    latencies, failed = [], 0
    for _ in range(count):
        start = time.perf_counter()
        try:
            status, _ = call(f"{base}/api/items/{item_id}/similar?k=10")
        except OSError:
            status = 0
        latencies.append(time.perf_counter() - start)
        failed += status != 200
    return latencies, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=300)
    parser.add_argument("--puts", type=int, default=40)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--model", default="efficientnet-lite0")
    args = parser.parse_args()
    catalog = REPO / "demo" / "catalog"
    work = Path(tempfile.mkdtemp(prefix="items-bench-"))
    lines = (catalog / "styles.csv").read_text(encoding="utf-8").splitlines()
    (work / "catalog" / "images").mkdir(parents=True)
    (work / "catalog" / "styles.csv").write_text("\n".join(lines[: args.products + 1]) + "\n", encoding="utf-8")
    ids = [line.split(",", 1)[0] for line in lines[1 : args.products + 1]]
    for item_id in ids:
        (work / "catalog" / "images" / f"{item_id}.jpg").write_bytes((catalog / "images" / f"{item_id}.jpg").read_bytes())
    index_catalog(work / "catalog", work / "index", model=ModelSpec(args.model), progress=False)

    port = free_port()
    env = {**os.environ, "FASHIONREC_API_KEY": KEY, "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "fashionrec", "serve", "--index-dir", str(work / "index"),
                               "--port", str(port), "--refresh", "0"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if call(f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.3)
        photos = [(catalog / "images" / f"{i}.jpg").read_bytes() for i in ids[: args.puts]]
        put_latencies, visible = [], 0
        started = time.perf_counter()
        for n, photo in enumerate(photos):
            body, headers = multipart(photo, {"articleType": "Bench"})
            t0 = time.perf_counter()
            status, _ = call(f"{base}/api/items/bench-{n}", "PUT", body, {**headers, "X-API-Key": KEY})
            put_latencies.append(time.perf_counter() - t0)
            assert status == 201, status
            status, _answer = call(f"{base}/api/items/bench-{n}/similar?k=1")
            visible += status == 200
        put_seconds = time.perf_counter() - started  # includes the visibility checks
        query_id = ids[0]
        call(f"{base}/api/items/{query_id}/similar?k=10")  # warm
        quiet, quiet_failed = query_loop(base, query_id, args.queries)
        stop = threading.Event()
        reloads = [0, 0]

        def reload_loop() -> None:
            while not stop.is_set():
                status, _ = call(f"{base}/admin/reload", "POST", b"", {"X-API-Key": KEY})
                reloads[0] += 1
                reloads[1] += status != 200

        rss = [rss_mib(server.pid)]
        swapping, swapping_failed = [], 0
        for _ in range(2):  # two rounds: the server's memory after each must not keep growing
            stop.clear()
            thread = threading.Thread(target=reload_loop)
            thread.start()
            try:
                latencies, failed = query_loop(base, query_id, args.queries)
            finally:
                stop.set()
                thread.join()
            swapping += latencies
            swapping_failed += failed
            rss.append(rss_mib(server.pid))
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = {
        "machine": machine(), "model": args.model, "products": args.products,
        "put": {"count": len(photos), "items_per_s": round(len(photos) / sum(put_latencies), 1),
                "items_per_s_with_checks": round(len(photos) / put_seconds, 1), **percentiles(put_latencies),
                "visible_to_next_query": visible},
        "queries_no_swap": {"count": len(quiet), "failed": quiet_failed, **percentiles(quiet)},
        "queries_while_reloading": {"count": len(swapping), "failed": swapping_failed, "reloads": reloads[0],
                                    "reloads_failed": reloads[1], **percentiles(swapping),
                                    "server_rss_mib_before_and_after_each_round": rss},
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "items_api.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0 if not (quiet_failed or swapping_failed or reloads[1]) and visible == len(photos) else 1


if __name__ == "__main__":
    sys.exit(main())
