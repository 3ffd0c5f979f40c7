"""int8 on CPUs with and without VNNI: each quantisation scheme against float32, in one run.

    nice .venv/bin/python benchmarks/int8_schemes.py [--catalog demo/catalog] [--queries demo/queries] [--model fashion]

Indexes the catalogue three times into temporary folders: float32; int8 as this CPU's ladder chooses; int8 as a
CPU without VNNI gets it (the 7-bit scheme, forced by giving the ladder an AVX2-only flag set). 7-bit weights cannot
saturate a 16-bit pair sum, so the forced run computes what an AVX2-only CPU computes; its speed is this CPU's, not
that one's. For each: the scheme recorded in the cached model, its mean cosine to float on the calibration images,
indexing time, and the overlap of each query photo's top 5 with float32's. Then the 7-bit variants the shipped one
was chosen among (7-bit weights alone, with the two first and two last layers in float, with the first twelve and
the last two in float): their drift on the calibration images and how many of float's top 5 they keep. Writes
benchmarks/results/int8_schemes.json, with this CPU's int8 flags.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

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


# the 7-bit variants weighed against the shipped one (fashionrec.embedders.quantize.SEVEN_BIT)
CANDIDATES = (q.Int8Scheme("u8s7", reduce_range=True), q.Int8Scheme("u8s7-float-ends", reduce_range=True,
              float_first=2, float_last=2), q.SEVEN_BIT)


def candidates(catalog: Path, queries: list[Path], model: str, k: int) -> dict[str, Any]:
    """Each 7-bit variant against float: mean cosine on the calibration images (what the drift limit judges) and
    the overlap of each query's top k over the catalogue (exact cosine search), the variant's limit not applied."""
    from fashionrec.embedders.onnx_embedder import OnnxEmbedder, with_metadata
    from fashionrec.embedders.packaged import packaged_onnx
    from fashionrec.imageio import load_image

    reference = ModelSpec(model).build()
    assert isinstance(reference, OnnxEmbedder)
    export = packaged_onnx(model, reference.image_size, None)
    assert export is not None, "the candidates are weighed on a model shipped as ONNX"
    products = np.stack([reference.preprocess(load_image(p)) for p in sorted((catalog / "images").glob("*.jpg"))])
    photos = np.stack([reference.preprocess(load_image(p)) for p in queries])
    pixels = q.calibration_batch(reference.preprocess)
    expected = np.argsort(-(reference.embed_arrays(photos) @ reference.embed_arrays(products).T), axis=1)[:, :k]
    out = {}
    for scheme in CANDIDATES:
        variant = OnnxEmbedder.load(with_metadata(q.quantize(export, pixels, "pixels", scheme), reference.meta))
        cosine = float(np.mean(np.sum(reference.embed_arrays(pixels) * variant.embed_arrays(pixels), axis=1)))
        tops = np.argsort(-(variant.embed_arrays(photos) @ variant.embed_arrays(products).T), axis=1)[:, :k]
        kept = sum(len(set(a) & set(b)) for a, b in zip(tops, expected))
        out[scheme.name] = {"float_first": scheme.float_first, "float_last": scheme.float_last,
                            "calibration_mean_cosine": round(cosine, 4), f"top{k}_kept": f"{kept}/{k * len(queries)}"}
    return out


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
            "seven_bit_candidates": candidates(args.catalog, queries, args.model, args.k),
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
