"""The shipped fashion model: its weights load and match their checksum, it exports to ONNX (float and int8), and a
photo of each demo class finds its own kind in the demo catalogue."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionrec.embedders import DEFAULT_MODEL, create_embedder
from fashionrec.embedders.fashion import CARD_FILE, WEIGHTS_FILE, card, packaged_weights
from fashionrec.errors import FashionrecError
from fashionrec.modelspec import ModelSpec
from fashionrec.recommend import Recommender
from tests.conftest import DEMO_QUERIES

DEMO_KINDS = {"dress": {"Dresses"}, "pants": {"Trousers", "Jeans", "Track Pants", "Leggings"},
              "shoes": {"Casual Shoes", "Sports Shoes", "Formal Shoes", "Flats", "Heels", "Sandals", "Flip Flops"},
              "t-shirt": {"Tshirts"}}


def test_fashion_is_the_default_and_its_card_describes_it() -> None:
    assert DEFAULT_MODEL == "fashion"
    embedder = create_embedder("fashion")
    info = card()
    assert (embedder.dim, embedder.image_size) == (info["dim"], info["image_size"]) == (256, 128)
    assert info["sha256"] == hashlib.sha256(packaged_weights().read_bytes()).hexdigest()


def test_a_changed_weights_file_is_refused(tmp_path: Path) -> None:
    shutil.copy(packaged_weights(), tmp_path / WEIGHTS_FILE)
    shutil.copy(packaged_weights().parent / CARD_FILE, tmp_path / CARD_FILE)
    assert packaged_weights(tmp_path) == tmp_path / WEIGHTS_FILE
    data = bytearray((tmp_path / WEIGHTS_FILE).read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(FashionrecError, match="do not match their recorded checksum"):
        packaged_weights(tmp_path)
    (tmp_path / CARD_FILE).unlink()
    with pytest.raises(FashionrecError, match="not installed"):
        packaged_weights(tmp_path)


@pytest.mark.slow
def test_onnx_float_and_int8_follow_pytorch(tmp_path: Path) -> None:
    images = [Image.open(DEMO_QUERIES / f"{name}.jpg") for name in DEMO_KINDS]
    reference = create_embedder("fashion").embed(images)
    onnx = ModelSpec("fashion").build(cache_dir=tmp_path, backend="onnx")
    assert onnx.backend == "onnxruntime" and onnx.dim == 256
    assert np.min(np.sum(reference * onnx.embed(images), axis=1)) > 1 - 1e-4
    int8 = ModelSpec("fashion", precision="int8").build(cache_dir=tmp_path, backend="onnx")
    assert np.mean(np.sum(reference * int8.embed(images), axis=1)) > 0.95


def test_demo_photos_find_their_own_kind(demo_index: Path) -> None:
    """Each of the four demo photos has a product of its kind in the top 5 of the 300-product demo catalogue, and
    most of the dress photo's top 5 are dresses."""
    with Recommender.open(demo_index) as rec:
        assert rec.manifest.name == "fashion"
        found = {name: [r.metadata["articleType"] for r in rec.recommend(DEMO_QUERIES / f"{name}.jpg", k=5)]
                 for name in DEMO_KINDS}
    assert all(set(found[name]) & kinds for name, kinds in DEMO_KINDS.items()), found
    assert found["dress"].count("Dresses") >= 3, found
