"""The embedder factory and its backbones: shapes, unit rows, determinism, weights handling, real similarity."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from fashionrec import runtime
from fashionrec.embedders import DEFAULT_MODEL, Embedder, available_models, create_embedder
from fashionrec.embedders.base import TorchEmbedder, configure_threads
from fashionrec.embedders.efficientnet import packaged_weights
from fashionrec.embedders.resnet import ResNet50
from fashionrec.errors import FashionrecError

PACKAGED = ["efficientnet-lite2", "efficientnet-lite0", "mobilenetv2"]
SMALL = 64  # input side for the structural tests: they check behaviour, not accuracy, and the CPU is shared


def _tshirt(colour: tuple[int, int, int] = (200, 30, 30)) -> Image.Image:
    """A catalogue-like shot: a T-shirt silhouette on white, 60x80 like the real catalogue."""
    img = Image.new("RGB", (60, 80), "white")
    body = [(0.3, 0.15), (0.7, 0.15), (0.95, 0.35), (0.8, 0.45), (0.72, 0.38), (0.72, 0.9), (0.28, 0.9),
            (0.28, 0.38), (0.2, 0.45), (0.05, 0.35)]  # fmt: skip
    ImageDraw.Draw(img).polygon([(x * 60, y * 80) for x, y in body], fill=colour)
    return img


def _watch() -> Image.Image:
    img = Image.new("RGB", (60, 80), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle((24, 0, 36, 80), fill=(60, 40, 20))
    draw.ellipse((14, 24, 46, 56), fill=(20, 20, 20), outline=(200, 200, 200), width=3)
    return img


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


@pytest.fixture(scope="module", params=PACKAGED)
def embedder(request: pytest.FixtureRequest) -> Embedder:
    return create_embedder(request.param, image_size=SMALL)


@pytest.fixture
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_vectors_are_float32_unit_rows(embedder: Embedder) -> None:
    vectors = embedder.embed([_tshirt(), _watch(), _tshirt((20, 20, 160))])
    assert vectors.shape == (3, embedder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert embedder.embed([]).shape == (0, embedder.dim)


def test_preprocess_output(embedder: Embedder) -> None:
    array = embedder.preprocess(_tshirt())
    assert array.shape == (3, SMALL, SMALL) and array.dtype == np.float32 and array.flags.c_contiguous
    # Non-RGB input goes through load_image: transparent pixels become white, like the catalogue background.
    transparent = Image.new("RGBA", (60, 80), (0, 0, 0, 0))
    np.testing.assert_array_equal(
        embedder.preprocess(transparent), embedder.preprocess(Image.new("RGB", (60, 80), "white"))
    )


def test_same_image_gives_identical_vectors(embedder: Embedder) -> None:
    first = embedder.embed([_tshirt(), _tshirt()])
    np.testing.assert_allclose(first[0], first[1], atol=1e-6)
    np.testing.assert_array_equal(first, embedder.embed([_tshirt(), _tshirt()]))


def test_padding_keeps_the_garment_close(embedder: Embedder) -> None:
    embedder = create_embedder(embedder.name, image_size=128)  # at 64 px the narrowed shirt is a few pixels wide
    shirt = _tshirt()
    squared = Image.new("RGB", (80, 80), "white")
    squared.paste(shirt, (10, 0))
    widened = Image.new("RGB", (100, 80), "white")  # more white margin: the shirt gets smaller after squaring
    widened.paste(shirt, (20, 0))
    shirt_v, squared_v, widened_v, watch_v = embedder.embed([shirt, squared, widened, _watch()])
    np.testing.assert_allclose(shirt_v, squared_v, atol=1e-6)  # pad-to-square makes these the same input
    assert _cos(shirt_v, widened_v) > 0.85
    assert _cos(shirt_v, widened_v) > _cos(shirt_v, watch_v) + 0.3


def test_torch_module_gives_the_unnormalised_features(embedder: Embedder) -> None:
    assert isinstance(embedder, TorchEmbedder)
    batch = np.stack([embedder.preprocess(_tshirt()), embedder.preprocess(_watch())])
    with torch.inference_mode():
        raw = embedder.torch_module()(torch.from_numpy(batch)).numpy()
    assert raw.shape == (2, embedder.dim)
    np.testing.assert_allclose(
        raw / np.linalg.norm(raw, axis=1, keepdims=True), embedder.embed_arrays(batch), atol=1e-5
    )


def test_default_model_and_sizes() -> None:
    assert available_models()[0] == DEFAULT_MODEL == "fashion"
    assert set(available_models()) == {"fashion", *PACKAGED, "resnet50", "clip"}  # the last two need user weights
    lite0 = create_embedder("efficientnet-lite0")
    assert (lite0.name, lite0.dim, lite0.image_size) == ("efficientnet-lite0", 1280, 224)
    assert lite0.preprocess(_tshirt()).shape == (3, 224, 224)


def test_wrong_batch_shape_is_rejected() -> None:
    embedder = create_embedder("mobilenetv2", image_size=SMALL)
    with pytest.raises(ValueError, match="expects"):
        embedder.embed_arrays(np.zeros((1, 3, SMALL + 32, SMALL + 32), np.float32))


@pytest.mark.slow
def test_resnet50_loads_a_torchvision_format_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = ResNet50().state_dict()
    state["fc.weight"] = torch.randn(1000, 2048) * 0.01  # torchvision files carry the classifier; it is dropped
    state["fc.bias"] = torch.zeros(1000)
    path = tmp_path / "resnet50-random.pth"
    torch.save(state, path)
    embedder = create_embedder("resnet50", image_size=SMALL, weights=path)
    assert isinstance(embedder, TorchEmbedder)
    vectors = embedder.embed([_tshirt(), _watch()])
    assert (embedder.dim, vectors.shape) == (2048, (2, 2048)) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    loaded = embedder.torch_module().state_dict()
    assert torch.equal(loaded["layer4.2.conv3.weight"], state["layer4.2.conv3.weight"])


def test_resnet50_without_weights_says_where_to_get_them() -> None:
    with pytest.raises(FashionrecError, match=r"resnet50 needs .*download\.pytorch\.org"):
        create_embedder("resnet50")


def test_weights_file_problems_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(FashionrecError, match="not found"):
        create_embedder("resnet50", weights=tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(FashionrecError, match="cannot read weights file"):
        create_embedder("efficientnet-lite0", weights=garbage)
    # Lite0 weights into Lite2: same key names, other shapes and block count -> refused, not half-loaded.
    with pytest.raises(FashionrecError, match=r"does not fit efficientnet-lite2 \(missing: .*wrong shape"):
        create_embedder("efficientnet-lite2", weights=packaged_weights("efficientnet-lite0"))


def test_weights_override_is_used(tmp_path: Path) -> None:
    state = torch.load(packaged_weights("efficientnet-lite0"), weights_only=True)
    state["_conv_head.weight"] = torch.zeros_like(state["_conv_head.weight"])  # every feature becomes ReLU6(bias)
    path = tmp_path / "lite0-zero-head.pth"
    torch.save(state, path)
    vectors = create_embedder("efficientnet-lite0", image_size=SMALL, weights=path).embed([_tshirt(), _watch()])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)  # the images no longer matter


def test_unknown_model_and_bad_size() -> None:
    with pytest.raises(FashionrecError, match="unknown model 'vit-h14'; available: fashion, efficientnet-lite2, "):
        create_embedder("vit-h14")
    with pytest.raises(FashionrecError, match="image size"):
        create_embedder("efficientnet-lite0", image_size=16)


def test_thread_setting(one_thread: None) -> None:
    previous = runtime.configure(runtime.Runtime(threads=1))
    try:
        assert configure_threads() == 1 and torch.get_num_threads() == 1
    finally:
        runtime.configure(previous)


def test_listing_models_does_not_import_torch() -> None:
    code = "import sys, fashionrec.embedders as e; e.available_models(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.shared_data
def test_real_tshirts_are_closer_to_each_other_than_to_watches(shared_data: Path) -> None:
    """Default model, default size, on real catalogue shots: 5 T-shirts against 5 watches."""
    images = shared_data / "catalogue" / "images"
    ids: dict[str, list[str]] = {"Tshirts": [], "Watches": []}
    with (shared_data / "catalogue" / "styles.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            kind = row.get("articleType")
            if kind in ids and len(ids[kind]) < 5 and (images / f"{row['id']}.jpg").is_file():
                ids[kind].append(row["id"])
    embedder = create_embedder()
    vectors = embedder.embed([Image.open(images / f"{i}.jpg").convert("RGB") for i in ids["Tshirts"] + ids["Watches"]])
    tshirts, watches = vectors[:5], vectors[5:]
    within = tshirts @ tshirts.T
    tee_tee = within[np.triu_indices(5, k=1)]
    tee_watch = (tshirts @ watches.T).ravel()
    assert tee_tee.mean() > tee_watch.mean() + 0.1
    assert np.median(tee_tee) > tee_watch.max() - 0.05, (tee_tee, tee_watch)
