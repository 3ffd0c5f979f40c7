"""ONNX Runtime backend: same vectors as PyTorch, exported once and cached in the index, loaded without PyTorch."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fashionrec.embedders.base import TorchEmbedder
from fashionrec.embedders.onnx_embedder import ONNX_DIR, OnnxEmbedder
from fashionrec.errors import FashionrecError
from fashionrec.imageio import load_image
from fashionrec.manifest import Manifest
from fashionrec.modelspec import ModelSpec
from tests.conftest import DEMO_CATALOG, DEMO_QUERIES

SPEC = ModelSpec("efficientnet-lite0", 96)


def _images() -> list:
    paths = sorted((DEMO_CATALOG / "images").glob("*.jpg"))[:6] + sorted(DEMO_QUERIES.glob("*.jpg"))
    return [load_image(p) for p in paths]


def test_onnx_vectors_match_pytorch_and_export_is_cached(tmp_path: Path) -> None:
    reference = SPEC.build(backend="torch")
    exported = SPEC.build(cache_dir=tmp_path, backend="onnx")
    assert isinstance(reference, TorchEmbedder) and isinstance(exported, OnnxEmbedder)
    assert (exported.name, exported.dim, exported.image_size) == (reference.name, reference.dim, reference.image_size)
    images = _images()
    cosine = np.sum(reference.embed(images) * exported.embed(images), axis=1)
    assert cosine.min() >= 1 - 1e-4
    cached = list((tmp_path / ONNX_DIR).glob("*.onnx"))
    assert len(cached) == 1 and not list((tmp_path / ONNX_DIR).glob(".*.tmp"))
    again = SPEC.build(cache_dir=tmp_path, backend="onnx")
    assert np.array_equal(again.embed(images[:2]), exported.embed(images[:2]))


def test_cached_export_loads_without_pytorch(tmp_path: Path) -> None:
    SPEC.build(cache_dir=tmp_path, backend="onnx")
    code = (
        "import sys; from pathlib import Path; from fashionrec.modelspec import ModelSpec; "
        f"e = ModelSpec('efficientnet-lite0', 96).build(cache_dir=Path({str(tmp_path)!r})); "
        "from PIL import Image; v = e.embed([Image.new('RGB', (60, 80), 'red')]); "
        "print(type(e).__name__, v.shape, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["OnnxEmbedder", "(1,", "1280)", "False"]


def test_damaged_cache_is_replaced(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    SPEC.build(cache_dir=tmp_path, backend="onnx")
    (cached,) = (tmp_path / ONNX_DIR).glob("*.onnx")
    cached.write_bytes(b"<html>not a model</html>")
    embedder = SPEC.build(cache_dir=tmp_path, backend="onnx")
    assert "re-exporting damaged ONNX cache" in caplog.text
    assert caplog.records[-1].name == "fashionrec.embedders.onnx_embedder"  # a module logger, not print
    assert embedder.embed(_images()[:1]).shape == (1, 1280)
    assert OnnxEmbedder.load(str(cached)).name == "efficientnet-lite0"


def test_backend_choice(tmp_path: Path) -> None:
    assert isinstance(SPEC.build(cache_dir=tmp_path, backend="torch"), TorchEmbedder)
    assert not (tmp_path / ONNX_DIR).exists()
    with pytest.raises(FashionrecError, match="backend must be one of auto, onnx, torch"):
        SPEC.build(cache_dir=tmp_path, backend="tensorrt")


def test_read_only_index_dir_keeps_export_in_memory(tmp_path: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir()
    (locked / ONNX_DIR).write_text("a file where the cache folder should be")
    embedder = SPEC.build(cache_dir=locked, backend="onnx")
    assert isinstance(embedder, OnnxEmbedder)
    assert embedder.embed(_images()[:1]).shape == (1, 1280)


INT8 = ModelSpec("efficientnet-lite0", 96, precision="int8")


def test_int8_model_is_quantised_close_to_float_and_cached(tmp_path: Path) -> None:
    float_model = SPEC.build(cache_dir=tmp_path, backend="onnx")
    int8 = INT8.build(cache_dir=tmp_path)
    assert isinstance(int8, OnnxEmbedder) and (int8.precision, int8.backend) == ("int8", "onnxruntime int8")
    (int8_file,) = (tmp_path / ONNX_DIR).glob("*-int8-*.onnx")
    assert int8_file.stat().st_size < 0.5 * next(p for p in (tmp_path / ONNX_DIR).glob("*.onnx") if p != int8_file).stat().st_size
    images = _images()
    reference, quantised = float_model.embed(images), int8.embed(images)
    cosine = np.sum(reference * quantised, axis=1)
    assert cosine.min() > 0.9 and cosine.max() < 1 - 1e-4  # close to float32, yet really another network
    assert np.array_equal(OnnxEmbedder.load(str(int8_file)).embed(images[:2]), quantised[:2])
    # each image is still nearest to itself among the others in int8 space
    assert np.array_equal(np.argmax(quantised @ reference.T, axis=1), np.arange(len(images)))


def test_int8_needs_onnx_runtime_and_is_recorded(tmp_path: Path) -> None:
    with pytest.raises(FashionrecError, match="int8 runs in ONNX Runtime only"):
        INT8.build(cache_dir=tmp_path, backend="torch")
    with pytest.raises(FashionrecError, match="precision must be one of fp32, int8"):
        ModelSpec("efficientnet-lite0", 96, precision="fp16").build(cache_dir=tmp_path)
    recorded = Manifest(name=INT8.name, dim=1280, image_size=INT8.image_size, precision=INT8.precision)
    assert recorded.to_dict()["precision"] == "int8" and ModelSpec.from_manifest(recorded) == INT8
    assert not recorded.same_model(replace(recorded, precision="fp32"))


def test_int8_drift_past_the_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fashionrec.embedders import quantize

    monkeypatch.setattr(quantize, "INT8_MIN_MEAN_COSINE", 1.0)  # no quantised network is that exact
    with pytest.raises(FashionrecError, match="drifts too far from float32"):
        INT8.build(cache_dir=tmp_path)
    assert not list((tmp_path / ONNX_DIR).glob("*-int8-*.onnx"))  # a refused model is never cached
