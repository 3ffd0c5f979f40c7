"""The shared street photos: labelled garments come from the label maps (mapped labels covering 1 % of the photo),
the validation and training parts never mix, and the training part's garments become labelled crops."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionrec.errors import FashionrecError
from fashionrec.split import is_validation_photo
from fashionrec.street import CROPS_MAPPING, labelled_garments, street_photos, write_street_crops
from tests.conftest import street_folder

NAMES = ["null", "skin", "dress", "bag", "belt"]
MAPPING = {"dress": ["Dresses"], "bag": ["Handbags"], "belt": ["Belts"]}
SHOES = {"shoes": ["Casual Shoes", "Sports Shoes", "Heels", "Flats", "Sandals"]}


def test_garments_are_mapped_labels_covering_one_percent() -> None:
    labels = np.zeros((100, 100), np.uint8)
    labels[10:60, 20:50] = 2  # a dress, 15 %
    labels[70:75, 70:75] = 4  # a belt, 0.25 %: too small
    labels[0:30, 80:100] = 1  # skin: no catalogue counterpart
    labels[80:90, 5:15] = 3  # a bag, 1 %
    found = labelled_garments(labels, NAMES, MAPPING)
    assert [(g.label, g.box) for g in found] == [("dress", (20, 10, 30, 50)), ("bag", (5, 80, 10, 10))]
    assert found[0].share == pytest.approx(0.15)


def test_the_parts_never_mix(tmp_path: Path) -> None:
    names = [f"{n:04d}" for n in range(40)]
    root = street_folder(tmp_path / "street", names)
    photos = street_photos(root, SHOES)
    assert [p.name for p in photos] == [n for n in names if is_validation_photo(n)] and 0 < len(photos) < 40
    assert photos[0].labels == ("shoes",)  # every mapped label of the map (the bag is not in this mapping)
    with_bag = street_photos(root, {**SHOES, "bag": ["Handbags"]})
    assert with_bag[0].labels == ("bag", "shoes") and [g.label for g in with_bag[0].garments] == ["shoes"]
    training = street_photos(root, SHOES, validation=False)
    assert {p.name for p in training} == {n for n in names if not is_validation_photo(n)}
    assert len(street_photos(root, SHOES, validation=None)) == len(names)
    with pytest.raises(FashionrecError, match="no labelled garments in the validation part"):
        street_photos(root, {"hat": ["Caps"]})
    with pytest.raises(FashionrecError, match="is not a street-photo folder"):
        street_photos(tmp_path, SHOES)


def test_the_training_part_becomes_labelled_crops(tmp_path: Path) -> None:
    names = [f"{n:04d}" for n in range(12)]
    root = street_folder(tmp_path / "street", names)
    out = tmp_path / "crops"
    count = write_street_crops(root, out, SHOES, progress=False)
    training = [n for n in names if not is_validation_photo(n)]
    assert count == len(training) and sorted(p.stem for p in (out / "street-shoes").glob("*.jpg")) == [
        f"{n}-0" for n in training]  # one garment each (the bag speck is too small), never a validation photo
    assert json.loads((out / CROPS_MAPPING).read_text()) == {"street-shoes": SHOES["shoes"]}
    photo = Image.open(root / "photos" / f"{training[0]}.jpg")
    crop = Image.open(out / "street-shoes" / f"{training[0]}-0.jpg")
    assert crop.height < photo.height / 3 and crop.width < photo.width / 2  # the shoes' box and margin, not the photo
    assert not (tmp_path / "crops.partial").exists()
    (out / "street-shoes" / f"{training[0]}-0.jpg").unlink()  # a complete folder made from the same is kept
    assert write_street_crops(root, out, SHOES, progress=False) == count - 1
    assert write_street_crops(root, out, {"shoes": ["Heels"]}, progress=False) == count  # another mapping: anew
    assert json.loads((out / CROPS_MAPPING).read_text()) == {"street-shoes": ["Heels"]}


@pytest.mark.shared_data
def test_the_shared_street_photos_split_in_about_a_quarter(shared_data: Path) -> None:
    street = shared_data / "street-photos"
    mapping = json.loads((street / "mapping.json").read_text())
    validation, training = street_photos(street, mapping), street_photos(street, mapping, validation=False)
    assert 0.2 < len(validation) / (len(validation) + len(training)) < 0.3
    assert not {p.name for p in validation} & {p.name for p in training}
