"""Indexing from a cold start (issue 18): the fashion model's ONNX export ships with the package, so the default
model never needs PyTorch nor an export; decoding fills one uint8 array per batch with the same numbers as before;
large JPEGs are decoded at a reduced scale; the default head searches compact vectors."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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
from fashionrec.indexing import embed_batches
from fashionrec.modelspec import ModelSpec
from fashionrec.train import BLEND_WEIGHT, default_backbone_weight
from tests.conftest import DEMO_CATALOG, DEMO_QUERIES


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


def test_batched_decoding_gives_the_same_vectors_as_one_image_at_a_time(tmp_path: Path) -> None:
    embedder = ModelSpec().build()
    paths = sorted((DEMO_CATALOG / "images").glob("*.jpg"))[:9] + sorted(DEMO_QUERIES.glob("*.jpg"))
    items = [(p.stem, str(p)) for p in paths]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    items.insert(3, ("broken", str(broken)))
    batches = list(embed_batches(embedder, items, batch_size=len(items)))
    assert len(batches) == 1
    ids, vectors, failures = batches[0]
    assert ids == [p.stem for p in paths] and [f[0] for f in failures] == ["broken"]
    one_by_one = np.vstack([embedder.embed_arrays(embedder.preprocess(load_image(p))[None]) for p in paths])
    assert np.allclose(vectors, one_by_one, atol=1e-6)
    whole = embedder.embed([load_image(p) for p in paths])  # the same batch through the per-image preprocessing
    assert np.array_equal(vectors, whole)


def test_large_jpegs_are_decoded_at_a_reduced_scale_never_below_the_draft_side() -> None:
    photo = Image.open(min(DEMO_QUERIES.glob("*.jpg"))).convert("RGB").resize((1600, 1200))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    assert load_image(data).size == (1600, 1200)
    assert load_image(data, draft=250).size == (400, 300)  # 1/4: both sides stay at least 250
    assert load_image(data, draft=384).size == (800, 600)  # 1/4 would make the short side 300
    assert load_image(data, draft=700).size == (1600, 1200)  # halving would go below 700
    small = DEMO_CATALOG / "images" / min(p.name for p in (DEMO_CATALOG / "images").glob("*.jpg"))
    assert np.array_equal(np.asarray(load_image(small, draft=384)), np.asarray(load_image(small)))


def test_the_default_head_is_compact_for_the_fashion_model() -> None:
    assert default_backbone_weight({"name": "fashion"}) == 0.0  # the MLP output alone: --dim (256) wide
    assert default_backbone_weight({"name": "efficientnet-lite2"}) == BLEND_WEIGHT


@pytest.mark.parametrize("precision", ["fp32"])
def test_index_with_the_default_model_never_imports_pytorch(tmp_path: Path, precision: str) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(DEMO_CATALOG, catalog)
    rows = (catalog / "styles.csv").read_text().splitlines()[:21]
    (catalog / "styles.csv").write_text("\n".join(rows) + "\n")
    code = ("import sys; from fashionrec.cli import main; "
            f"rc = main(['index', {str(catalog)!r}, '--index-dir', {str(tmp_path / 'index')!r}, '--json', "
            f"'--precision', {precision!r}]); print('torch' in sys.modules, rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[-2:] == ["False", "0"]
