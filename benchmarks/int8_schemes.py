"""int8 on CPUs with and without VNNI: each quantisation scheme against float32, in one run.

    nice .venv/bin/python benchmarks/int8_schemes.py [--catalog demo/catalog] [--queries demo/queries] [--model fashion]

Indexes the catalogue three times into temporary folders: float32; int8 as this CPU's ladder chooses; int8 as a
CPU without VNNI gets it (the 7-bit scheme, forced by giving the ladder an AVX2-only flag set). 7-bit weights cannot
saturate a 16-bit pair sum, so the forced run computes what an AVX2-only CPU computes; its speed is this CPU's, not
that one's. For each: the scheme recorded in the cached model, its mean cosine to float on the calibration images,
indexing time, and the overlap of each query photo's top 5 with float32's. Writes
benchmarks/results/int8_schemes.json, with this CPU's int8 flags.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine, print_table, run_main, write_results
from fashionrec.embedders import quantize as q
from fashionrec.indexing import index_catalog
from fashionrec.modelspec import ModelSpec
from fashionrec.recommend import Recommender

AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})


def _run(catalog: Path, queries: list[Path], spec: ModelSpec, k: int) -> tuple[float, float, list[list[str]], str]:
    """Seconds to build the model (export / quantise and calibrate), seconds to index, each query's top k."""
    with tempfile.TemporaryDirectory(prefix="fashionrec-int8-") as tmp:
        start = time.perf_counter()
        embedder = spec.build(cache_dir=Path(tmp))
        build = time.perf_counter() - start
        start = time.perf_counter()
        index_catalog(catalog, tmp, model=spec, embedder=embedder, index_kind="flat")
        seconds = time.perf_counter() - start
        with Recommender.open(tmp) as rec:
            tops = [[r.id for r in rec.recommend(str(p), k=k)] for p in queries]
            numerics = rec.embedder.numerics
    return build, seconds, tops, numerics


def main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=Path("demo/catalog"))
    parser.add_argument("--queries", type=Path, default=Path("demo/queries"))
    parser.add_argument("--model", default="fashion")
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    queries = sorted(args.queries.glob("*.jpg"))
    products = sum(1 for p in (args.catalog / "images").glob("*.jpg"))
    runs: dict[str, Any] = {}
    base_build, base_seconds, base_tops, _ = _run(args.catalog, queries, ModelSpec(args.model), args.k)
    runs["fp32"] = {"numerics": "fp32", "model_seconds": round(base_build, 2), "seconds": round(base_seconds, 2),
                    "img_per_s": round(products / base_seconds, 1)}
    real_flags = q.cpu_flags()
    for label, flags in (("int8, this CPU", real_flags), ("int8, as without VNNI", AVX2_ONLY)):
        q.cpu_flags = lambda flags=flags: flags  # type: ignore[assignment]  # the ladder's only input besides drift
        build, seconds, tops, numerics = _run(args.catalog, queries, ModelSpec(args.model, precision="int8"), args.k)
        overlap = [len(set(a) & set(b)) / args.k for a, b in zip(tops, base_tops)]
        runs[label] = {"numerics": numerics, "model_seconds": round(build, 2), "seconds": round(seconds, 2), "img_per_s": round(products / seconds, 1),
                       "top5_overlap_with_fp32": {p.name: o for p, o in zip(queries, overlap)},
                       "mean_top5_overlap": round(sum(overlap) / len(overlap), 3)}
    int8_flags = sorted((real_flags or frozenset()) & {"avx2", "avx512_vnni", "avx_vnni", "amx_int8"})
    data = {"machine": {**machine(), "int8_flags": int8_flags}, "catalog": str(args.catalog), "products": products,
            "model": args.model, "queries": len(queries), "runs": runs,
            "note": "model_seconds: loading the model, for int8 its quantisation and calibration (once per index); "
                    "seconds / img_per_s: indexing with the model built; the 'without VNNI' run computes what such "
                    "a CPU computes, at this CPU's speed"}
    print_table(["run", "numerics", "model s", "index s", "img/s", "top-5 overlap"],
                [[k, v["numerics"], v["model_seconds"], v["seconds"], v["img_per_s"], v.get("mean_top5_overlap", "-")]
                 for k, v in runs.items()], json_mode=args.json)
    write_results("int8_schemes", data, echo=args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
