"""Shop the look over HTTP: ``POST /api/look`` against a real ``fashionrec serve``, from a socket client.

    nice .venv/bin/python benchmarks/look_http.py --index INDEX_DIR [--street DIR] [--rounds 2]

Starts ``fashionrec serve`` on the index (the 8,000-product sample of benchmarks/street_look.py), waits for
/healthz, then uploads each photo of the street photos' validation part one after the other (``k=5``), ``rounds``
times (the first round warms the caches and is not counted). Reports p50 / p95 / max of the whole request (upload,
decode, localise, embed, search, JSON), failed requests and garments per look. Writes benchmarks/results/look_http.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import SHARED, machine, print_table, run_main, write_results
from _http import call, free_port, multipart
from fashionrec.columns import load_mapping
from fashionrec.street import street_photos


def main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--street", type=Path, default=SHARED / "street-photos")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--note", default="")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    photos = [p.path.read_bytes() for p in street_photos(args.street, load_mapping(args.street / "mapping.json"))]
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "fashionrec", "serve", "--index-dir", str(args.index),
                               "--port", str(port)], env=os.environ.copy(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if call(f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        latencies: list[float] = []
        failed, garments = 0, []
        for round_ in range(args.rounds):
            for photo in photos:
                body, headers = multipart(photo, {})
                start = time.perf_counter()
                status, answer = call(f"{base}/api/look?k=5", "POST", body, headers)
                elapsed = time.perf_counter() - start
                if round_ == 0:
                    continue
                latencies.append(elapsed * 1000)
                if status != 200:
                    failed += 1
                else:
                    garments.append(len(json.loads(answer)["garments"]))
    finally:
        server.terminate()
        server.wait(timeout=30)
    ms = np.array(latencies)
    data = {"machine": machine(), "index": str(args.index), "photos": len(photos), "rounds_counted": args.rounds - 1,
            "requests": len(latencies), "failed": failed,
            "latency_ms": {"p50": round(float(np.percentile(ms, 50)), 1), "p95": round(float(np.percentile(ms, 95)), 1),
                           "max": round(float(ms.max()), 1)},
            "garments_per_look": round(float(np.mean(garments)), 2) if garments else 0.0, "note": args.note}
    print_table(["requests", "failed", "p50 ms", "p95 ms", "max ms"],
                [[len(latencies), failed, *data["latency_ms"].values()]], json_mode=args.json)
    write_results("look_http", data, echo=args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
