"""Indexing and query speed of the ImageNet default and the fashion model, in one run on one machine.

    nice .venv/bin/python benchmarks/model_speed.py [--limit 2000] [--queries 200]
        [--index efficientnet-lite2=DIR --index fashion=DIR]

For each model: ``index_catalog`` of the first ``--limit`` shared products into a temporary folder (scan, decode,
embed, SQLite, FAISS; the ONNX export is made once beforehand so both models are timed warm), then, when a full
index of that model is given (``--index MODEL=DIR``, with its head), the in-process latency of a photo query
(JPEG bytes -> results, ``Recommender.recommend``) over it, cycling through the real test photos. Writes
benchmarks/results/model_speed.json and prints a table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import SHARED, SHARED_CATALOGUE, machine, print_table, run_main, write_results
from fashionrec.embedders import resolve_image_size
from fashionrec.indexing import index_catalog
from fashionrec.modelspec import ModelSpec
from fashionrec.recommend import Recommender
from index_throughput import write_subset_csv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="efficientnet-lite2,fashion")
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--index", action="append", default=[], metavar="MODEL=DIR",
                        help="a full index of MODEL (with its head) to time queries on")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    full = dict(entry.split("=", 1) for entry in args.index)
    photos = sorted((SHARED / "clothing-photos" / "test").glob("*/*.jpg"))
    payloads = [p.read_bytes() for p in photos[: args.queries]]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "subset.csv"
        count = write_subset_csv(SHARED_CATALOGUE, args.limit, csv_path)
        for model in args.models.split(","):
            folder = Path(tmp) / model
            folder.mkdir()
            ModelSpec(model).build(cache_dir=folder)  # export once: both models are timed with a warm cache
            started = time.perf_counter()
            index_catalog(SHARED_CATALOGUE, folder, metadata=csv_path, model=ModelSpec(model), progress=False)
            seconds = time.perf_counter() - started
            row: dict[str, Any] = {"model": model, "image_size": resolve_image_size(model, None), "products": count,
                                   "index_seconds": round(seconds, 1), "images_per_s": round(count / seconds, 1)}
            if model in full:
                with Recommender.open(full[model]) as rec:
                    rec.recommend(payloads[0], k=10)
                    latencies = []
                    for payload in payloads:
                        t0 = time.perf_counter()
                        rec.recommend(payload, k=10)
                        latencies.append((time.perf_counter() - t0) * 1000)
                    row.update(query_p50_ms=round(float(np.percentile(latencies, 50)), 2),
                               query_p90_ms=round(float(np.percentile(latencies, 90)), 2), searched=len(rec.store),
                               dim=rec.store.dim, head=rec.head is not None)
            rows.append(row)
    print_table(["model", "px", "products", "index s", "img/s", "query p50 ms", "p90", "dim"],
                [[r["model"], r["image_size"], r["products"], r["index_seconds"], r["images_per_s"],
                  r.get("query_p50_ms", ""), r.get("query_p90_ms", ""), r.get("dim", "")] for r in rows],
                json_mode=False)
    write_results("model_speed", {"machine": machine(), "note": args.note, "rows": rows}, echo=False)
    return 0


if __name__ == "__main__":
    run_main(main)
