"""Single-query latency, upload bytes -> results: in-process and over HTTP, plus the vector search alone.

    nice -n 5 .venv/bin/python benchmarks/query_latency.py --index-dir DIR [--queries 200] [--kind auto]

``--kind`` re-publishes the index's FAISS file from its SQLite vectors first (``auto`` = what a fresh
``fashionrec index`` would build; this writes ``DIR/vectors.faiss``, so point it at a copy). Queries cycle through
the demo photos and real clothing photos (as the soak benchmark sends). In-process: ``Recommender.recommend`` on
the JPEG bytes. HTTP: a real ``fashionrec serve`` subprocess on 127.0.0.1, one client, ``POST /api/recommend``.
Search only: ``store.search`` on precomputed query vectors. Prints a table, writes benchmarks/results/query_latency.json.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from _common import machine, print_table, run_main, write_results
from fashionrec import manifest as manifests
from fashionrec.catalog_db import open_db
from fashionrec.embedders.preprocess import thread_count
from fashionrec.publish import publish_faiss
from fashionrec.recommend import Recommender
from soak import _photos, free_port, start_server

K = 10


def timed(call: Callable[[int], object], n: int) -> dict[str, float]:
    """p50/p99/mean in ms of ``n`` calls, after 5 warm-up calls."""
    for i in range(5):
        call(i)
    times = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "mean_ms": round(float(ms.mean()), 2)}


def main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--kind", default="", help="re-publish the FAISS file as this kind first (writes the index)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--note", default="", help="free text stored in the JSON (e.g. machine load)")
    parser.add_argument("--json", action="store_true", help="also print the JSON result to stdout")
    parser.add_argument("--name", default="query_latency", help="results file: benchmarks/results/NAME.json")
    args = parser.parse_args(argv)
    if args.kind:
        with open_db(args.index_dir) as db:
            publish_faiss(db, args.index_dir, manifests.read(db), args.kind)
    photos = _photos()
    rows = {}
    with Recommender.open(args.index_dir) as rec:
        items, kind = len(rec), getattr(rec.store, "kind", "?")
        backend = getattr(rec.embedder, "backend", "?")
        model = {"name": rec.embedder.name, "image_size": rec.embedder.image_size, "backbone_dim": rec.embedder.dim,
                 "head": rec.head is not None, "head_backbone_weight": rec.head.backbone_weight if rec.head else None,
                 "searched_dim": rec.store.dim}
        rows["in-process recommend(bytes)"] = timed(lambda i: rec.recommend(photos[i % len(photos)], k=K), args.queries)
        vectors = rec.embed(photos)
        rows["search only"] = timed(lambda i: rec.store.search(vectors[i % len(photos)][None], K), args.queries)
        rows["search only, gender=Women"] = timed(
            lambda i: rec.store.search(vectors[i % len(photos)][None], K, {"gender": frozenset(["Women"])}),
            args.queries)
    port = free_port()
    server = start_server(args.index_dir, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            rows["HTTP POST /api/recommend"] = timed(lambda i: client.post(
                "/api/recommend", params={"k": K}, files={"file": ("q.jpg", photos[i % len(photos)], "image/jpeg")}
            ).raise_for_status(), args.queries)
    finally:
        server.terminate()
        server.wait(timeout=30)
    data = {"benchmark": "query_latency", "items": items, "index_kind": kind, "backend": backend, "model": model, "k": K,
            "queries": args.queries, "photos": len(photos), "threads": thread_count(), "results": rows,
            "machine": machine(), "note": args.note}
    print_table(["path", "p50 ms", "p99 ms", "mean ms"],
                [[name, r["p50_ms"], r["p99_ms"], r["mean_ms"]] for name, r in rows.items()], json_mode=args.json)
    print(f"{items:,} items, index {kind}, backend {backend}, {model['name']} @ {model['image_size']} px, searched "
          f"{model['searched_dim']}-d")
    write_results(args.name, data, echo=args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
