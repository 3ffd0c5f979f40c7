"""Indexing throughput: the shared catalogue (or its first N products) indexed into a temporary folder.

    nice .venv/bin/python benchmarks/index_throughput.py [--catalog DIR] [--limit N] [--model NAME] [--image-size PX]

Times one full ``index_catalog`` run (scan + content hashes, decoding, embedding, SQLite, FAISS build) and reports
products, seconds, images/s, peak RSS of this process, model, image size and the machine. ``--limit N`` indexes only
the first N products that have an image, through a temporary CSV, because the full 41k catalogue takes over half
an hour on a 2-core machine. Prints a table, writes benchmarks/results/index_throughput.json.

``--baseline`` first times the reference projects' way on the same products, in the same run: one image at a
time, decoded then embedded by eager PyTorch (batch of 1, no decode overlap), and reports the ratio.

``--whole-process`` times both as the user runs them instead, each a fresh process from a cold start: the naive
loop (``benchmarks/naive_index.py``: imports, PyTorch model load, the one-image loop, a pickle of the vectors)
against ``fashionrec index`` into a new index folder (imports, model load or ONNX export, decoding, embedding,
SQLite, FAISS build, the catalogue report), wall clock from spawn to exit, alternating, ``--repeats`` times each
(the median is reported). The image files are read once before, so both find them in the page cache. The two
ways' vectors are compared too (lowest cosine: ONNX Runtime vs eager PyTorch).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import add_common_options, check_limit, machine, peak_rss_mib, print_table, run_main, write_results
from fashionrec.catalog import read_catalog
from fashionrec.config import env_default
from fashionrec.embedders.preprocess import thread_count
from fashionrec.errors import FashionrecError
from fashionrec.imageio import load_image
from fashionrec.indexing import index_catalog
from fashionrec.modelspec import PRECISIONS, ModelSpec


def write_subset_csv(catalog_dir: Path, limit: int, target: Path) -> int:
    """Write the first ``limit`` products that have an image to ``target``; return how many were written."""
    catalog = read_catalog(catalog_dir)
    items = catalog.items[:limit]
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", *catalog.columns])
        writer.writerows([item.id, *(item.metadata[c] for c in catalog.columns)] for item in items)
    return len(items)


def naive_baseline(args: argparse.Namespace) -> dict[str, Any]:
    """The reference way: per product, decode, preprocess, one eager PyTorch forward pass of batch 1."""
    items = read_catalog(args.catalog).items[: args.limit or None]
    embedder = ModelSpec(name=args.model, image_size=args.image_size).build(backend="torch")
    start = time.perf_counter()
    for item in items:
        embedder.embed_arrays(embedder.preprocess(load_image(item.image_path))[None])
    seconds = time.perf_counter() - start
    return {"products": len(items), "seconds": round(seconds, 1), "images_per_s": round(len(items) / seconds, 1),
            "peak_rss_mib": peak_rss_mib(), "backend": "torch (eager, batch 1)"}


def measure(args: argparse.Namespace, index_dir: Path, scratch: Path) -> dict[str, Any]:
    """Index into ``index_dir`` (``scratch`` holds the subset CSV of ``--limit``) and return the measured figures."""
    metadata = None
    if args.limit:
        metadata = scratch / "subset.csv"
        write_subset_csv(args.catalog, args.limit, metadata)
    spec = ModelSpec(name=args.model, image_size=args.image_size, precision=args.precision)
    embedder = spec.build()  # built before the clock starts: loading weights is not indexing throughput
    start = time.perf_counter()
    result = index_catalog(args.catalog, index_dir, metadata=metadata, model=spec, embedder=embedder,
                           batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    return {
        "products": result.total,
        "embedded": result.embedded,
        "unreadable": result.unreadable,
        "seconds": round(seconds, 1),
        "images_per_s": round(result.embedded / seconds, 1) if seconds else None,
        "peak_rss_mib": peak_rss_mib(),
        "model": embedder.name,
        "image_size": embedder.image_size,
        "precision": args.precision,
        "batch_size": args.batch_size,
        "index_kind": result.index_kind,
        "backend": getattr(embedder, "backend", "?"),
    }


def timed_process(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd`` to completion: wall seconds from spawn to exit, its peak RSS in MiB, and its stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed ({process.returncode}): {err.read().decode()[-2000:]}")
        return seconds, round(usage.ru_maxrss / 1024, 1), out.read().decode()


def whole_process(args: argparse.Namespace) -> dict[str, Any]:
    """The naive loop and ``fashionrec index``, each a fresh process, alternating ``args.repeats`` times."""
    here = Path(__file__).resolve().parent
    items = read_catalog(args.catalog).items[: args.limit or None]
    for item in items:  # into the page cache, for both ways alike
        item.image_path.read_bytes()
    runs: dict[str, list[dict[str, Any]]] = {"naive": [], "ours": []}
    with tempfile.TemporaryDirectory(prefix="fashionrec-throughput-") as tmp:
        scratch = Path(tmp)
        metadata = scratch / "subset.csv"
        write_subset_csv(args.catalog, len(items), metadata)
        naive_cmd = [sys.executable, str(here / "naive_index.py"), str(args.catalog), "--limit", str(len(items)),
                     "--model", args.model, "--out", str(scratch / "naive.pkl")]
        if args.image_size:
            naive_cmd += ["--image-size", str(args.image_size)]
        for repeat in range(args.repeats):
            seconds, rss, _ = timed_process(naive_cmd)
            runs["naive"].append({"seconds": round(seconds, 2), "peak_rss_mib": rss})
            index_dir = scratch / f"index{repeat}"
            ours_cmd = [str(Path(sys.executable).parent / "fashionrec"), "index", str(args.catalog), "--metadata",
                        str(metadata), "--index-dir", str(index_dir), "--model", args.model, "--precision",
                        args.precision, "--batch-size", str(args.batch_size), "--json"]
            if args.image_size:
                ours_cmd += ["--image-size", str(args.image_size)]
            seconds, rss, out = timed_process(ours_cmd)
            result = json.loads(out.strip().splitlines()[-1])
            runs["ours"].append({"seconds": round(seconds, 2), "peak_rss_mib": rss, "embedded": result["embedded"],
                                 "index_kind": result["index_kind"]})
            print(f"run {repeat + 1}/{args.repeats}: naive {runs['naive'][-1]['seconds']} s, ours "
                  f"{runs['ours'][-1]['seconds']} s", file=sys.stderr)
        with (scratch / "naive.pkl").open("rb") as handle:
            naive_ids, naive_vectors = pickle.load(handle)
        ids, vectors, model = _stored_vectors(index_dir)
    position = {item_id: n for n, item_id in enumerate(ids)}
    both = [n for n, item_id in enumerate(naive_ids) if item_id in position]
    cosine = np.sum(naive_vectors[both] * vectors[[position[naive_ids[n]] for n in both]], axis=1)
    summary: dict[str, Any] = {"products": len(items), "repeats": args.repeats, "runs": runs, "model": model}
    for way in ("naive", "ours"):
        median = statistics.median(r["seconds"] for r in runs[way])
        summary[way] = {"seconds": round(median, 2), "images_per_s": round(len(items) / median, 1),
                        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs[way])}
    summary["speedup"] = round(summary["naive"]["seconds"] / summary["ours"]["seconds"], 2)
    summary["vectors_min_cosine"] = round(float(cosine.min()), 6)
    summary["vectors_compared"] = len(both)
    return summary


def _stored_vectors(index_dir: Path) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    from fashionrec.index import Index

    db, model = Index.open_database(index_dir)
    try:
        return *db.vectors(model.dim), model.to_dict()
    finally:
        db.close()


def main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser)
    parser.add_argument("--model", default=env_default("FASHIONREC_MODEL"))
    parser.add_argument("--image-size", type=int, default=None, help="input side in px (default: the model's)")
    parser.add_argument("--precision", choices=PRECISIONS, default=env_default("FASHIONREC_PRECISION"))
    parser.add_argument("--batch-size", type=int, default=int(env_default("FASHIONREC_BATCH_SIZE")))
    parser.add_argument("--baseline", action="store_true", help="also time the naive one-image eager PyTorch way")
    parser.add_argument("--index-dir", type=Path, default=None,
                        help="build the index here and keep it (must not exist yet; default: a temporary folder)")
    parser.add_argument("--name", default="index_throughput", help="results file: benchmarks/results/NAME.json")
    parser.add_argument("--whole-process", action="store_true",
                        help="time the naive loop and `fashionrec index` as whole processes from a cold start instead")
    parser.add_argument("--repeats", type=int, default=3, help="with --whole-process: runs of each way (median)")
    args = parser.parse_args(argv)
    check_limit(args.limit)
    if args.whole_process:
        summary = whole_process(args)
        data = {"benchmark": "index_throughput_whole_process", "catalog": str(args.catalog), "limit": args.limit,
                "precision": args.precision, "batch_size": args.batch_size, "threads": thread_count(),
                "machine": machine(), "note": args.note, **summary}
        m = data["machine"]
        print_table(
            ["way", "products", "seconds (median)", "images/s", "peak RSS MiB", "machine"],
            [[way, data["products"], data[way]["seconds"], data[way]["images_per_s"], data[way]["peak_rss_mib"],
              f"{m['cores']} cores, {m['cpu']}"] for way in ("naive", "ours")],
            json_mode=args.json,
        )
        print(f"whole process: ours is {data['speedup']}x the naive loop; vectors agree to cosine >= "
              f"{data['vectors_min_cosine']}", file=sys.stderr if args.json else sys.stdout)
        write_results(args.name, data, echo=args.json)
        return 0
    baseline = naive_baseline(args) if args.baseline else None
    if args.index_dir is not None and args.index_dir.exists():
        raise FashionrecError(f"{args.index_dir} exists: a throughput run must start from an empty index")
    with tempfile.TemporaryDirectory(prefix="fashionrec-throughput-") as tmp:
        figures = measure(args, args.index_dir or Path(tmp) / "index", Path(tmp))
    data = {"benchmark": "index_throughput", "catalog": str(args.catalog), "limit": args.limit,
            "machine": machine(), "note": args.note, **figures}
    if baseline:
        data["baseline"] = baseline
        data["speedup"] = round(figures["images_per_s"] / baseline["images_per_s"], 1)
        print(f"naive baseline: {baseline['images_per_s']} img/s on {baseline['products']} products; ours "
              f"{figures['images_per_s']} img/s ({data['speedup']}x)", file=sys.stderr if args.json else sys.stdout)
    m = data["machine"]
    print_table(
        ["products", "seconds", "images/s", "peak RSS MiB", "model", "image size", "precision", "machine"],
        [[data["products"], data["seconds"], data["images_per_s"], data["peak_rss_mib"], data["model"],
          data["image_size"], data["precision"], f"{m['cores']} cores, {m['cpu']}"]],
        json_mode=args.json,
    )
    write_results(args.name, data, echo=args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
