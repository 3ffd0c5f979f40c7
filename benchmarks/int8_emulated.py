"""int8 on a CPU without VNNI, emulated: each quantisation scheme run on an AVX2-only CPU that QEMU emulates.

    nice .venv/bin/python benchmarks/int8_emulated.py prepare WORK [--model fashion] [--images 16]
    qemu-x86_64 -cpu EPYC-Rome .venv/bin/python benchmarks/int8_emulated.py check WORK --cpu "QEMU EPYC-Rome"
    qemu-x86_64 -cpu EPYC-Rome .venv/bin/python benchmarks/int8_emulated.py index WORK --cpu "QEMU EPYC-Rome"

``prepare`` (on any machine) quantises the model with every scheme of fashionrec.embedders.quantize (quantisation
itself only runs the float model, so the files do not depend on the CPU) and stores them in WORK with the first
``--images`` shipped calibration images, preprocessed, and the float model's embeddings of them. ``check`` runs
each int8 model on those images on the CPU it runs on (under ``qemu-x86_64 -cpu EPYC-Rome``, Debian's qemu-user:
an AMD Zen 2 with AVX2 and without VNNI, whose CPUID onnxruntime's kernels dispatch on) and records its drift (mean
cosine to float: what the drift limit judges), its agreement with the same model's embeddings on the machine that
prepared it, and the scheme fashionrec's ladder chooses from that drift, both with the CPU flags read from
/proc/cpuinfo (QEMU user mode passes the host's through) and with an AVX2-only flag set. Emulation is about three
orders of magnitude slower than the host: no speed is measured here. ``index`` indexes the demo catalogue at int8
on the CPU it runs on, as ``fashionrec index --precision int8`` does (quantisation, calibration and the drift check
included), and compares each demo query's top 5 with the float32 index ``prepare`` built. Writes
benchmarks/results/<name>.json (``check``) and <name>_index.json (``index``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import machine, print_table, run_main, write_results
from fashionrec.embedders import quantize as q
from fashionrec.embedders.onnx_embedder import INPUT_NAME, OnnxEmbedder
from fashionrec.embedders.packaged import packaged_onnx
from fashionrec.indexing import index_catalog
from fashionrec.modelspec import ModelSpec
from fashionrec.recommend import Recommender

AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})
DEMO = Path(__file__).resolve().parent.parent / "demo"


def _embed(model: bytes, pixels: np.ndarray) -> np.ndarray:
    return OnnxEmbedder.load(model).embed_arrays(pixels)


def _tops(spec: ModelSpec, catalog: Path, queries: list[Path], index_dir: Path, k: int = 5) -> tuple[dict[str, list[str]], str, float]:
    """Index ``catalog`` with ``spec`` into ``index_dir``: each query's top k, the numerics in use, seconds taken."""
    start = time.perf_counter()
    index_catalog(catalog, index_dir, model=spec, index_kind="flat", progress=False)
    seconds = time.perf_counter() - start
    with Recommender.open(index_dir) as rec:
        return {p.name: [r.id for r in rec.recommend(str(p), k=k)] for p in queries}, rec.embedder.numerics, seconds


def prepare(work: Path, model: str, images: int) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    tops, _, _ = _tops(ModelSpec(model), DEMO / "catalog", sorted((DEMO / "queries").glob("*.jpg")), work / "fp32")
    (work / "fp32-tops.json").write_text(json.dumps(tops))
    spec = ModelSpec(model)
    reference = spec.build(cache_dir=work / "cache")
    assert isinstance(reference, OnnxEmbedder)
    float_model = packaged_onnx(spec.name, reference.image_size, spec.weights)
    if float_model is None:
        raise SystemExit(f"no packaged ONNX export of {model}")
    pixels = q.calibration_batch(reference.preprocess)
    np.save(work / "pixels.npy", pixels[:images])
    np.save(work / "float.npy", reference.embed_arrays(pixels[:images]))
    meta = {"model": model, "images": int(min(images, len(pixels))), "calibration_images": len(pixels),
            "schemes": {}}
    for scheme in q.SCHEMES.values():
        data = q.quantize(float_model, pixels, INPUT_NAME, scheme)  # calibrated on all, as int8_model does
        model_bytes = _with_reference_meta(data, reference)
        (work / f"{scheme.name}.onnx").write_bytes(model_bytes)
        np.save(work / f"{scheme.name}.prepared.npy", _embed(model_bytes, pixels[:images]))
        meta["schemes"][scheme.name] = {"file": f"{scheme.name}.onnx"}
    meta["prepared_on"] = {**machine(), "int8_flags": sorted((q.cpu_flags() or frozenset()) & (
        AVX2_ONLY | {"avx512_vnni", "avx_vnni", "amx_int8"}))}
    (work / "prepared.json").write_text(json.dumps(meta, indent=1))
    return meta


def _with_reference_meta(data: bytes, reference: OnnxEmbedder) -> bytes:
    from fashionrec.embedders.onnx_embedder import with_metadata

    return with_metadata(data, {**reference.meta, "precision": "int8"})


def check(work: Path, cpu: str, name: str, as_json: bool) -> int:
    meta = json.loads((work / "prepared.json").read_text())
    pixels, expected = np.load(work / "pixels.npy"), np.load(work / "float.npy")
    runs: dict[str, Any] = {}
    drifts: dict[str, float] = {}
    for scheme_name in meta["schemes"]:
        start = time.perf_counter()
        vectors = _embed((work / f"{scheme_name}.onnx").read_bytes(), pixels)
        prepared = np.load(work / f"{scheme_name}.prepared.npy")
        drifts[scheme_name] = float(np.mean(np.sum(expected * vectors, axis=1)))
        runs[scheme_name] = {
            "mean_cosine_to_float": round(drifts[scheme_name], 4),
            "min_cosine_to_float": round(float(np.min(np.sum(expected * vectors, axis=1))), 4),
            "mean_cosine_to_prepared_machine": round(float(np.mean(np.sum(prepared * vectors, axis=1))), 6),
            "holds_limit": drifts[scheme_name] >= q.INT8_MIN_MEAN_COSINE,
            "seconds": round(time.perf_counter() - start, 1)}

    def chosen(flags: frozenset[str] | None) -> str | None:
        ladder = q.scheme_ladder(platform.machine(), flags)
        pick = q.choose(ladder, lambda s: (b"", drifts[s.name]))
        return None if pick is None else pick[0].name

    flags = q.cpu_flags()
    data = {"cpu": cpu, "machine": machine(), "model": meta["model"], "images": meta["images"],
            "prepared_on": meta["prepared_on"], "limit": q.INT8_MIN_MEAN_COSINE, "schemes": runs,
            "ladder_choice": {"flags from /proc/cpuinfo": {"flags": sorted((flags or frozenset()) & (
                AVX2_ONLY | {"avx512_vnni", "avx_vnni", "amx_int8"})), "chosen": chosen(flags)},
                "AVX2-only flags": {"flags": sorted(AVX2_ONLY), "chosen": chosen(AVX2_ONLY)}},
            "note": "drift over the first images of the shipped calibration set; int8 models quantised on the "
                    "prepared_on machine (calibration runs the float model only); seconds are emulated, not a "
                    "speed"}
    print_table(["scheme", "mean cosine to fp32", "min", "same as prepared machine", "holds 0.98"],
                [[k, v["mean_cosine_to_float"], v["min_cosine_to_float"], v["mean_cosine_to_prepared_machine"],
                  v["holds_limit"]] for k, v in runs.items()], json_mode=as_json)
    write_results(name, data, echo=as_json)
    return 0


def index(work: Path, cpu: str, name: str, as_json: bool) -> int:
    meta = json.loads((work / "prepared.json").read_text())
    base = json.loads((work / "fp32-tops.json").read_text())
    queries = sorted((DEMO / "queries").glob("*.jpg"))
    tops, numerics, seconds = _tops(ModelSpec(meta["model"], precision="int8"), DEMO / "catalog", queries,
                                    work / "int8-here")
    overlap = {q: len(set(tops[q]) & set(base[q])) / len(base[q]) for q in base}
    data = {"cpu": cpu, "machine": machine(), "model": meta["model"], "catalog": "demo/catalog",
            "numerics": numerics, "top5_overlap_with_fp32": overlap,
            "mean_top5_overlap": round(sum(overlap.values()) / len(overlap), 3), "emulated_seconds": round(seconds),
            "fp32_index_built_on": meta["prepared_on"],
            "note": "int8 index built, quantisation and drift check included, on the CPU named; float32 top 5 from "
                    "the index prepare built; emulated seconds are not a speed"}
    print_table(["numerics", "mean top-5 overlap with fp32"], [[numerics, data["mean_top5_overlap"]]],
                json_mode=as_json)
    write_results(f"{name}_index", data, echo=as_json)
    return 0


def main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("prepare", "check", "index"))
    parser.add_argument("work", type=Path)
    parser.add_argument("--model", default="fashion")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--cpu", default="", help="what CPU check runs on, for the record (e.g. QEMU EPYC-Rome)")
    parser.add_argument("--name", default="int8_emulated")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.step == "prepare":
        print(json.dumps(prepare(args.work, args.model, args.images), indent=1))
        return 0
    if args.step == "index":
        return index(args.work, args.cpu, args.name, args.json)
    return check(args.work, args.cpu, args.name, args.json)


if __name__ == "__main__":
    run_main(main)
