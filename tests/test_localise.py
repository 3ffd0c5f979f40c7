"""Query-side garment localisation: the box on synthetic photos, the fallbacks, and the switch on the query path."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from fashionrec.api import ApiSettings, create_app
from fashionrec.cli import main
from fashionrec.evaluate import photo_queries
from fashionrec.indexing import index_catalog
from fashionrec.localise import garment_box, localise
from fashionrec.modelspec import ModelSpec
from fashionrec.ranking import RankingConfig
from fashionrec.recommend import Recommender
from tests.conftest import DEMO_CATALOG

GARMENT = (70, 50, 170, 190)  # left, top, right, bottom of the shape drawn on a 240 x 240 ground


def tshirt(ground: Image.Image, colour: tuple[int, int, int] = (200, 30, 40), box=GARMENT) -> Image.Image:
    """A t-shirt-like shape (body and two sleeves) filling ``box`` on a copy of ``ground``."""
    image = ground.copy()
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = box
    w = right - left
    draw.rectangle((left + w // 4, top, right - w // 4, bottom), fill=colour)
    draw.polygon([(left, top + 30), (left + w // 4, top), (left + w // 4, top + 60)], fill=colour)
    draw.polygon([(right, top + 30), (right - w // 4, top), (right - w // 4, top + 60)], fill=colour)
    return image


def plain(colour=(150, 120, 90), size=(240, 240)) -> Image.Image:
    return Image.new("RGB", size, colour)


def gradient(size=(240, 240)) -> Image.Image:
    y = np.linspace(0, 1, size[1])[:, None, None]
    x = np.linspace(0, 1, size[0])[None, :, None]
    rgb = np.array([170, 160, 150]) * (0.8 + 0.15 * y + 0.05 * x)
    return Image.fromarray(np.broadcast_to(rgb, (size[1], size[0], 3)).astype(np.uint8))


def noisy(size=(240, 240), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    rgb = np.array([120, 130, 140]) + rng.normal(0, 12, (size[1], size[0], 3))
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def two_tone(size=(240, 240)) -> Image.Image:
    """A striped bed sheet: two colours in broad bands."""
    image = plain((230, 225, 210), size)
    draw = ImageDraw.Draw(image)
    for x in range(0, size[0], 40):
        draw.rectangle((x, 0, x + 19, size[1]), fill=(90, 110, 160))
    return image


def contains(outer, inner, slack: int = 2) -> bool:
    return (outer[0] <= inner[0] + slack and outer[1] <= inner[1] + slack
            and outer[2] >= inner[2] - slack and outer[3] >= inner[3] - slack)


def area(box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


# the box ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ground", [plain(), gradient(), noisy(), two_tone()], ids=["plain", "gradient", "noisy",
                                                                                   "two-tone"])
def test_box_contains_the_garment_and_is_much_smaller_than_the_photo(ground: Image.Image) -> None:
    photo = tshirt(ground)
    box = garment_box(photo)
    assert contains(box, GARMENT)
    assert area(box) < 0.6 * area((0, 0, *photo.size))
    assert localise(photo).size == (box[2] - box[0], box[3] - box[1])


def test_off_centre_garment_on_a_wide_photo() -> None:
    garment = (180, 40, 300, 200)
    photo = tshirt(plain((60, 60, 60), (400, 240)), (240, 240, 230), garment)
    box = garment_box(photo)
    assert contains(box, garment)
    assert box[0] > 120  # the empty left part of the floor is cut away


def test_studio_shot_on_white_is_boxed_to_the_product() -> None:
    product = Image.open(DEMO_CATALOG / "images" / min(p.name for p in (DEMO_CATALOG / "images").iterdir()))
    product = product.convert("RGB")
    canvas = Image.new("RGB", (240, 240), (255, 255, 255))
    canvas.paste(product.resize((90, 120)), (75, 60))
    ink = np.flatnonzero((np.asarray(canvas).min(axis=2) < 235).any(axis=0))
    rows = np.flatnonzero((np.asarray(canvas).min(axis=2) < 235).any(axis=1))
    box = garment_box(canvas)
    assert contains(box, (ink[0], rows[0], ink[-1] + 1, rows[-1] + 1), slack=3)
    assert area(box) < 0.5 * 240 * 240


def test_box_never_falls_below_the_minimum_share() -> None:
    photo = tshirt(plain(), box=(110, 110, 134, 134))  # a tiny garment
    box = garment_box(photo)
    assert box[2] - box[0] >= 0.3 * 240 and box[3] - box[1] >= 0.3 * 240
    assert contains(box, (110, 110, 134, 134))


@pytest.mark.parametrize("image", [
    plain(), plain((255, 255, 255)), noisy(), gradient(),
    tshirt(plain(), (152, 122, 92)),  # a garment of the floor's own colour: no contrast
    tshirt(plain(), box=(4, 4, 236, 236)),  # the garment is the photo
], ids=["uniform", "white", "noise", "gradient", "low-contrast", "fills-the-frame"])
def test_unsure_means_the_full_image(image: Image.Image) -> None:
    assert garment_box(image) == (0, 0, *image.size)
    assert localise(image).size == image.size


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (3, 2), (15, 400), (1, 500)])
def test_tiny_and_thin_images_do_not_crash(size: tuple[int, int]) -> None:
    image = Image.new("RGB", size, (10, 200, 30))
    box = garment_box(image)
    assert 0 <= box[0] < box[2] <= size[0] and 0 <= box[1] < box[3] <= size[1]
    assert localise(image).size[0] >= 1


def test_any_mode_and_whiten() -> None:
    photo = tshirt(noisy())
    assert garment_box(photo.convert("RGBA")) == garment_box(photo)
    assert contains(garment_box(photo.convert("L")), GARMENT)
    white = np.asarray(localise(photo, whiten=True))
    assert (white[:3, :3] > 240).all()  # the corner of the crop is floor, now white
    box = garment_box(photo)
    centre = white[(GARMENT[1] + GARMENT[3]) // 2 - box[1], (GARMENT[0] + GARMENT[2]) // 2 - box[0]]
    assert tuple(centre) == (200, 30, 40)  # the garment is untouched


def test_input_is_not_modified() -> None:
    photo = tshirt(plain())
    before = photo.tobytes()
    localise(photo, whiten=True)
    assert photo.tobytes() == before


# the query path --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quick index: 40 demo products, Lite0 at 64 px."""
    root = tmp_path_factory.mktemp("localise-index")
    with open(DEMO_CATALOG / "styles.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    with open(root / "styles.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows[:41])
    index_catalog(DEMO_CATALOG, root / "index", metadata=root / "styles.csv",
                  model=ModelSpec("efficientnet-lite0", image_size=64), progress=False)
    return root / "index"


@pytest.fixture(scope="module")
def rec(small_index: Path) -> Iterator[Recommender]:
    with Recommender.open(small_index) as r:
        yield r


@pytest.fixture(scope="module")
def floor_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalogue product photographed on a brown floor, saved losslessly."""
    product = Image.open(next(iter(sorted((DEMO_CATALOG / "images").iterdir())))).convert("RGB")
    floor = np.asarray(noisy((320, 240), seed=3)).astype(int) + np.array([40, 10, -30])
    photo = Image.fromarray(np.clip(floor, 0, 255).astype(np.uint8))
    mask = Image.fromarray(((np.asarray(product).min(axis=2) < 235) * 255).astype(np.uint8))
    photo.paste(product.resize((120, 160)), (150, 50), mask.resize((120, 160)))
    path = tmp_path_factory.mktemp("photos") / "floor.png"
    photo.save(path)
    return path


def test_switch_is_off_by_default_and_crops_the_query(rec: Recommender, floor_photo: Path) -> None:
    assert rec.localise is False
    photo = Image.open(floor_photo).convert("RGB")
    cropped = photo.crop(garment_box(photo))
    assert cropped.size != photo.size
    plain_vector, manual = rec.embed([photo]), rec.embed([cropped])
    rec.localise = True
    try:
        localised = rec.embed([photo])
        results = rec.recommend(floor_photo, k=10)
    finally:
        rec.localise = False
    np.testing.assert_allclose(localised, manual, atol=1e-6)
    assert not np.allclose(localised, plain_vector, atol=1e-3)
    assert [r.id for r in results] == [r.id for r in rec.recommend(cropped, k=10)]


def test_cli_recommend_localise_equals_the_manual_crop(small_index: Path, floor_photo: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    photo = Image.open(floor_photo).convert("RGB")
    cropped = tmp_path / "cropped.png"
    photo.crop(garment_box(photo)).save(cropped)

    def ids(*argv: str) -> list[tuple[str, float]]:
        assert main(["recommend", "--index-dir", str(small_index), "--json", "-k", "8", *argv]) == 0
        return [(r["id"], r["score"]) for r in json.loads(capsys.readouterr().out)["results"]]

    assert ids("--localise", str(floor_photo)) == ids(str(cropped))
    assert ids(str(floor_photo)) != ids(str(cropped))


def test_env_switch_and_flag_precedence(small_index: Path, floor_photo: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    photo = Image.open(floor_photo).convert("RGB")
    cropped = tmp_path / "cropped.png"
    photo.crop(garment_box(photo)).save(cropped)

    def ids(*argv: str) -> list[str]:
        assert main(["recommend", "--index-dir", str(small_index), "--json", "-k", "8", *argv]) == 0
        return [r["id"] for r in json.loads(capsys.readouterr().out)["results"]]

    monkeypatch.setenv("FASHIONREC_LOCALISE", "1")
    with Recommender.open(small_index, ranking=RankingConfig.from_env()) as r:
        assert r.localise is True
    with Recommender.open(small_index) as r:
        assert r.localise is False  # the library never reads the environment: the CLI and API read it once
    manual = ids("--no-localise", str(cropped))
    assert ids(str(floor_photo)) == manual
    assert ids("--no-localise", str(floor_photo)) != manual


@pytest.mark.parametrize("value", ["yes", "2", "", "true"])
def test_bad_env_value_is_one_line_and_exit_2(value: str, small_index: Path, floor_photo: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FASHIONREC_LOCALISE", value)
    assert main(["recommend", "--index-dir", str(small_index), str(floor_photo)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "FASHIONREC_LOCALISE must be 0 or 1" in err


def test_photo_queries_with_and_without(rec: Recommender, floor_photo: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "photos"
    (folder / "shoes").mkdir(parents=True)
    Image.open(floor_photo).save(folder / "shoes" / "a.png")
    mapping = {"shoes": ["Casual Shoes"]}
    off = photo_queries(rec, folder, mapping, None, progress=False)
    on = photo_queries(rec, folder, mapping, None, progress=False, localise=True)
    np.testing.assert_allclose(on[0].vector, rec.embed([localise(Image.open(floor_photo).convert("RGB"))])[0],
                               atol=1e-6)
    assert not np.allclose(on[0].vector, off[0].vector, atol=1e-3)
    mapping_file = tmp_path / "mapping.json"
    mapping_file.write_text(json.dumps(mapping))
    argv = ["evaluate", "--index-dir", str(rec.index_dir), "--photos", str(folder), "--mapping", str(mapping_file),
            "--json"]
    assert main([*argv, "--localise"]) == 0
    assert json.loads(capsys.readouterr().out)["localise"] is True
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["localise"] is False


def test_api_honours_the_switch(rec: Recommender, floor_photo: Path) -> None:
    photo = Image.open(floor_photo).convert("RGB")
    buffer = io.BytesIO()
    photo.crop(garment_box(photo)).save(buffer, format="PNG")
    client = TestClient(create_app(rec, settings=ApiSettings()))

    def ids(data: bytes) -> list[str]:
        response = client.post("/api/recommend?k=8", files={"file": ("p.png", data, "image/png")})
        assert response.status_code == 200
        return [r["id"] for r in response.json()["results"]]

    manual = ids(buffer.getvalue())
    assert ids(floor_photo.read_bytes()) != manual
    rec.localise = True
    try:
        assert ids(floor_photo.read_bytes()) == manual
    finally:
        rec.localise = False
