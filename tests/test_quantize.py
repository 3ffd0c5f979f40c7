"""int8 on every CPU: the scheme is chosen by the CPU's instructions and by measured drift, recorded in the model,
and a cached model quantised for another kind of CPU is quantised again. Every branch runs on any machine: the
choice is tested by its inputs (CPU flags, drift), and the 7-bit scheme, which never saturates, is built for real."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fashionrec.embedders import quantize as q
from fashionrec.embedders.onnx_embedder import ONNX_DIR, OnnxEmbedder, with_metadata
from fashionrec.modelspec import ModelSpec

AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw"})
VNNI = AVX2_ONLY | {"avx512_vnni"}
INT8 = ModelSpec("efficientnet-lite0", 96, precision="int8")


@pytest.mark.parametrize(("machine", "flags", "ladder"), [
    ("x86_64", AVX2_ONLY, (q.SEVEN_BIT,)),  # AVX2 / AVX-512 without VNNI: saturating 16-bit sums
    ("x86_64", VNNI, (q.FULL_RANGE, q.SEVEN_BIT)),
    ("x86_64", AVX2_ONLY | {"avx_vnni"}, (q.FULL_RANGE, q.SEVEN_BIT)),
    ("AMD64", AVX2_ONLY | {"amx_int8"}, (q.FULL_RANGE, q.SEVEN_BIT)),
    ("aarch64", frozenset({"fp", "asimd"}), (q.FULL_RANGE, q.SEVEN_BIT)),  # ARM64 widens to 32 bits
    ("x86_64", None, (q.FULL_RANGE, q.SEVEN_BIT)),  # flags unreadable: measured drift decides
])
def test_the_ladder_follows_the_cpu(machine: str, flags: frozenset[str] | None, ladder: tuple) -> None:
    assert q.scheme_ladder(machine, flags) == ladder


def test_the_first_scheme_under_the_drift_limit_is_kept() -> None:
    cosines = {"u8s8": 0.82, "u8s7-float-early": 0.99}
    tried: list[str] = []

    def drift(scheme: q.Int8Scheme) -> tuple[bytes, float]:
        tried.append(scheme.name)
        return scheme.name.encode(), cosines[scheme.name]

    assert q.choose((q.FULL_RANGE, q.SEVEN_BIT), drift) == (q.SEVEN_BIT, b"u8s7-float-early", 0.99)
    assert tried == ["u8s8", "u8s7-float-early"]
    cosines["u8s8"] = 0.995
    tried.clear()
    assert q.choose((q.FULL_RANGE, q.SEVEN_BIT), drift) == (q.FULL_RANGE, b"u8s8", 0.995)
    assert tried == ["u8s8"]  # a scheme that holds stops the search
    cosines["u8s8"] = cosines["u8s7-float-early"] = 0.9
    assert q.choose((q.FULL_RANGE, q.SEVEN_BIT), drift) is None


def test_a_cached_scheme_is_reused_only_where_it_is_faithful() -> None:
    assert q.acceptable("u8s8", "x86_64", VNNI) and q.acceptable(None, "x86_64", VNNI)
    assert not q.acceptable("u8s8", "x86_64", AVX2_ONLY) and not q.acceptable(None, "x86_64", AVX2_ONLY)
    assert q.acceptable("u8s7-float-early", "x86_64", AVX2_ONLY) and q.acceptable("u8s7-float-early", "aarch64", None)
    assert not q.acceptable("u4", "x86_64", VNNI)  # a scheme this fashionrec does not know


def test_seven_bit_scheme_keeps_its_first_and_last_layers_in_float_and_holds_the_limit(tmp_path: Path) -> None:
    reference = ModelSpec("efficientnet-lite0", 96).build(cache_dir=tmp_path, backend="onnx")
    assert isinstance(reference, OnnxEmbedder)
    (float_file,) = (tmp_path / ONNX_DIR).glob("*.onnx")
    model = float_file.read_bytes()
    pixels = q.calibration_batch(reference.preprocess)
    data = q.quantize(model, pixels, "pixels", q.SEVEN_BIT)
    import onnx

    ops = [node.op_type for node in onnx.load_from_string(data).graph.node]
    assert "QLinearConv" in ops and ops.count("Conv") == q.SEVEN_BIT.float_first + q.SEVEN_BIT.float_last
    seven = OnnxEmbedder.load(with_metadata(data, {**reference.meta, "precision": "int8"}))
    cosine = np.mean(np.sum(reference.embed_arrays(pixels) * seven.embed_arrays(pixels), axis=1))
    assert q.INT8_MIN_MEAN_COSINE <= cosine < 1 - 1e-4


def test_a_cpu_without_vnni_gets_and_records_the_seven_bit_scheme(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    full = INT8.build(cache_dir=tmp_path)  # on this machine's own ladder
    assert isinstance(full, OnnxEmbedder) and full.meta["int8_scheme"] in q.SCHEMES
    assert full.numerics == f"int8 ({full.meta['int8_scheme']})" and full.meta["int8_mean_cosine"] >= 0.98
    assert INT8.cached_numerics(tmp_path) == full.numerics
    (cached,) = (tmp_path / ONNX_DIR).glob("*-int8-*.onnx")
    meta = {k: v for k, v in full.meta.items() if k not in ("int8_scheme", "int8_mean_cosine")}
    import onnx

    proto = onnx.load(str(cached))
    del proto.metadata_props[:]
    cached.write_bytes(with_metadata(proto.SerializeToString(), meta))  # as written before schemes were recorded
    monkeypatch.setattr(q, "cpu_flags", lambda: AVX2_ONLY)
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    moved = INT8.build(cache_dir=tmp_path)  # the index moved to an AVX2-only machine: quantised again, 7-bit
    assert isinstance(moved, OnnxEmbedder) and moved.meta["int8_scheme"] == "u8s7-float-early"
    assert OnnxEmbedder.load(str(cached)).numerics == "int8 (u8s7-float-early)"  # and the cache replaced
