"""The fashion model's ONNX export shipped with the package: made from the shipped weights and following
PyTorch, used only when everything matches, so the default model never needs PyTorch nor an export; int8 is
quantised from it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fashionrec.embedders.onnx_embedder import ONNX_DIR, OnnxEmbedder
from fashionrec.embedders.packaged import (
    ONNX_CARD,
    ONNX_FILE,
    WEIGHTS_CARD,
    WEIGHTS_FILE,
    packaged_onnx,
    weights_folder,
)
from fashionrec.imageio import load_image
from fashionrec.modelspec import ModelSpec
from tests.conftest import DEMO_QUERIES


def test_the_shipped_export_is_made_from_the_shipped_weights() -> None:
    """Fails after the weights change until the export is remade: python -m fashionrec.embedders.packaged"""
    assert packaged_onnx("fashion", 128, None) is not None, "remake it: python -m fashionrec.embedders.packaged"


def test_the_shipped_export_follows_pytorch() -> None:
    from fashionrec.embedders import create_embedder

    images = [load_image(p) for p in sorted(DEMO_QUERIES.glob("*.jpg"))]
    reference = create_embedder("fashion").embed(images)
    shipped = OnnxEmbedder.load(packaged_onnx("fashion", 128, None) or b"")
    assert (shipped.name, shipped.dim, shipped.image_size) == ("fashion", 256, 128)
    assert np.min(np.sum(reference * shipped.embed(images), axis=1)) >= 1 - 1e-4


def test_the_default_model_builds_without_pytorch_and_copies_nothing(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from fashionrec.modelspec import ModelSpec; "
            f"e = ModelSpec().build(cache_dir=Path({str(tmp_path)!r})); "
            "print(type(e).__name__, e.dim, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["OnnxEmbedder", "256", "False"]
    assert not (tmp_path / ONNX_DIR).exists()  # the shipped export is used where it is


def test_the_shipped_export_is_used_only_when_everything_matches(tmp_path: Path) -> None:
    assert packaged_onnx("fashion", 96, None) is None  # another input size: exported from the weights
    assert packaged_onnx("fashion", 128, str(tmp_path / "mine.pt")) is None  # the user's own weights
    assert packaged_onnx("efficientnet-lite0", 128, None) is None
    for name in (WEIGHTS_FILE, WEIGHTS_CARD, ONNX_FILE, ONNX_CARD):
        shutil.copy(weights_folder() / name, tmp_path / name)
    assert packaged_onnx("fashion", 128, None, tmp_path) is not None
    onnx = bytearray((tmp_path / ONNX_FILE).read_bytes())
    onnx[-10] ^= 0xFF
    (tmp_path / ONNX_FILE).write_bytes(bytes(onnx))
    assert packaged_onnx("fashion", 128, None, tmp_path) is None  # damaged export: its checksum says so
    shutil.copy(weights_folder() / ONNX_FILE, tmp_path / ONNX_FILE)
    card = json.loads((tmp_path / ONNX_CARD).read_text())
    (tmp_path / ONNX_CARD).write_text(json.dumps({**card, "weights_sha256": "0" * 64}))
    assert packaged_onnx("fashion", 128, None, tmp_path) is None  # made from other weights


@pytest.mark.slow
def test_int8_is_quantised_from_the_shipped_export(tmp_path: Path) -> None:
    int8 = ModelSpec(precision="int8").build(cache_dir=tmp_path)
    assert int8.backend == "onnxruntime int8" and len(list((tmp_path / ONNX_DIR).glob("*int8*.onnx"))) == 1
