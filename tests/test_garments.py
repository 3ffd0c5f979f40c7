"""The garment localiser: its class file is validated once, its shipped network is checksummed, and it finds the
garments of a street photo as boxes inside the photo, in the class file's classes, most confident first."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionrec import garments
from fashionrec.errors import FashionrecError
from fashionrec.garments import (
    GarmentLocaliser,
    expand_box,
    garments_from_probabilities,
    iou,
    letterbox,
    load_classes,
)
from tests.conftest import REPO

STREET_PHOTO = REPO / "demo" / "street" / "0013.jpg"


@pytest.fixture(scope="module")
def localiser() -> GarmentLocaliser:
    return GarmentLocaliser.open()


def test_the_shipped_classes_name_catalogue_values_and_street_labels() -> None:
    classes = load_classes()
    assert classes.column == "articleType" and {"top", "dress", "skirt", "shoes", "bag"} <= set(classes.names)
    assert classes.values("skirt") == ("Skirts",) and "Heels" in classes.values("shoes")
    labels = classes.label_map()
    assert labels["jeans"] == labels["pants"] == 1 + classes.names.index("trousers")
    with pytest.raises(FashionrecError, match="unknown garment class 'cape'"):
        classes.values("cape")


@pytest.mark.parametrize(("text", "message"), [
    ("{", "is not JSON"),
    ('{"classes": {}}', "non-empty object 'classes'"),
    ('{"classes": {"top": {"values": "Tops"}}}', "class 'top' needs a list of strings 'values'"),
    ('{"column": 3, "classes": {"top": {"values": ["Tops"]}}}', "'column' must be a column name"),
])
def test_a_broken_class_file_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "g.json").write_text(text)
    with pytest.raises(FashionrecError, match=message):
        load_classes(tmp_path / "g.json")
    with pytest.raises(FashionrecError, match="cannot read garment classes"):
        load_classes(tmp_path / "absent.json")


def test_a_retailer_class_file_narrows_the_classes(tmp_path: Path) -> None:
    (tmp_path / "g.json").write_text(json.dumps({"column": "category", "classes": {
        "dress": {"values": ["dresses"]}, "shoes": {"values": ["footwear", "boots"]}}}))
    mine = GarmentLocaliser.open(classes=load_classes(tmp_path / "g.json"))
    found = mine.find(Image.open(STREET_PHOTO))
    assert found and {g.label for g in found} <= {"dress", "shoes"}
    (tmp_path / "bad.json").write_text(json.dumps({"classes": {"cape": {"values": ["Capes"]}}}))
    with pytest.raises(FashionrecError, match="cape are not classes the localiser knows"):
        GarmentLocaliser.open(classes=load_classes(tmp_path / "bad.json"))


def test_a_tampered_shipped_localiser_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (garments.LOCALISER_FILE, garments.LOCALISER_CARD, garments.CLASSES_FILE):
        shutil.copy(garments.weights_folder() / name, tmp_path / name)
    data = bytearray((tmp_path / garments.LOCALISER_FILE).read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / garments.LOCALISER_FILE).write_bytes(bytes(data))
    monkeypatch.setattr(garments, "weights_folder", lambda: tmp_path)
    with pytest.raises(FashionrecError, match="does not match its recorded checksum"):
        GarmentLocaliser.open()


def test_a_street_photo_gives_boxes_inside_it_most_confident_first(localiser: GarmentLocaliser) -> None:
    photo = Image.open(STREET_PHOTO)
    found = localiser.find(photo, masks=True)
    assert len(found) >= 3 and {"shoes", "trousers"} <= {g.label for g in found}
    assert [g.score for g in found] == sorted((g.score for g in found), reverse=True)
    assert len({g.label for g in found}) == len(found)  # one garment per class
    for g in found:
        x, y, w, h = g.box
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= photo.width and y + h <= photo.height
        assert 0.3 <= g.score <= 1 and 0.01 <= g.share <= 1
        assert g.mask is not None and g.mask.shape == (photo.height, photo.width) and g.mask.any()
        ys, xs = np.nonzero(g.mask)
        assert iou((int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1), g.box) > 0.8
    shoes = next(g for g in found if g.label == "shoes")
    trousers = next(g for g in found if g.label == "trousers")
    assert shoes.box[1] > trousers.box[1]  # the shoes are below the trousers
    assert len(localiser.find(photo, max_garments=2)) == 2


def test_a_blank_photo_has_no_garments(localiser: GarmentLocaliser) -> None:
    assert localiser.find(Image.new("RGB", (300, 450), (255, 255, 255))) == []


def test_boxes_follow_the_photo_whatever_its_size(localiser: GarmentLocaliser) -> None:
    photo = Image.open(STREET_PHOTO)
    big = photo.resize((photo.width * 2, photo.height * 2))
    small, large = localiser.find(photo), {g.label: g.box for g in localiser.find(big)}
    for g in small:
        if g.label in large:
            assert iou(tuple(2 * v for v in g.box), large[g.label]) > 0.7  # type: ignore[arg-type]
    wide = Image.new("RGB", (photo.width * 3, photo.height), (128, 128, 128))
    wide.paste(photo, (photo.width, 0))  # the same person in a landscape photo: boxes move with it
    for g in localiser.find(wide):
        assert photo.width - 5 <= g.box[0] and g.box[0] + g.box[2] <= 2 * photo.width + 5


def test_letterbox_keeps_the_aspect() -> None:
    canvas, scale, left, top = letterbox(Image.new("RGB", (400, 200), (255, 0, 0)), 256, 384)
    assert canvas.size == (256, 384) and scale == pytest.approx(0.64) and left == 0 and top == (384 - 128) // 2
    assert canvas.getpixel((10, 10)) == (127, 127, 127) and canvas.getpixel((128, 192)) == (255, 0, 0)


def test_specks_are_dropped_and_a_pair_is_one_garment() -> None:
    probs = np.zeros((3, 100, 100), np.float32)
    probs[0] = 1.0
    for x in (10, 60):  # two shoes of class 1
        probs[1, 80:95, x : x + 20], probs[0, 80:95, x : x + 20] = 0.9, 0.1
    probs[2, 5:7, 5:7], probs[0, 5:7, 5:7] = 0.9, 0.1  # a speck of class 2
    found = garments_from_probabilities(probs, ["shoes", "hat"], min_share=0.01, min_score=0.3)
    assert [(n, s) for n, _, s in found] == [("shoes", pytest.approx(0.9))]
    ys, xs = np.nonzero(found[0][1])
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (10, 79, 80, 94)
    assert garments_from_probabilities(probs, ["shoes", "hat"], min_share=0.01, min_score=0.95) == []


def test_box_helpers() -> None:
    assert expand_box((10, 10, 100, 50), 0.1, (1000, 1000)) == (0, 5, 120, 60)
    assert expand_box((0, 0, 100, 100), 0.5, (120, 110)) == (0, 0, 120, 110)
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1 and iou((0, 0, 10, 10), (10, 10, 5, 5)) == 0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
