"""The street-photo protocol: labelled garments come from the label maps (mapped labels covering 1 % of the photo),
only the validation part is measured, and crops, looks and the localiser are scored as the protocol says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionrec.errors import FashionrecError
from fashionrec.garments import load_classes
from fashionrec.recommend import Recommender
from fashionrec.split import is_validation_photo
from fashionrec.street_eval import evaluate_street, labelled_garments, street_photos
from tests.test_garments import STREET_PHOTO

NAMES = ["null", "skin", "dress", "bag", "belt"]
MAPPING = {"dress": ["Dresses"], "bag": ["Handbags"], "belt": ["Belts"]}


def test_garments_are_mapped_labels_covering_one_percent() -> None:
    labels = np.zeros((100, 100), np.uint8)
    labels[10:60, 20:50] = 2  # a dress, 15 %
    labels[70:75, 70:75] = 4  # a belt, 0.25 %: too small
    labels[0:30, 80:100] = 1  # skin: no catalogue counterpart
    labels[80:90, 5:15] = 3  # a bag, 1 %
    found = labelled_garments(labels, NAMES, MAPPING)
    assert [(g.label, g.box) for g in found] == [("dress", (20, 10, 30, 50)), ("bag", (5, 80, 10, 10))]
    assert found[0].share == pytest.approx(0.15)


def _street(root: Path, names: list[str]) -> Path:
    (root / "photos").mkdir(parents=True)
    (root / "masks").mkdir()
    photo = Image.open(STREET_PHOTO).convert("RGB")
    labels = np.zeros((photo.height, photo.width), np.uint8)
    labels[int(photo.height * 0.8):, int(photo.width * 0.35):int(photo.width * 0.55)] = 5  # shoes, bottom centre
    for name in names:
        photo.save(root / "photos" / f"{name}.jpg")
        Image.fromarray(labels).save(root / "masks" / f"{name}.png")
    (root / "labels.json").write_text(json.dumps({"labels": ["null", "skin", "hair", "bag", "dress", "shoes"]}))
    return root


def test_only_the_validation_part_is_measured(tmp_path: Path, demo_recommender: Recommender) -> None:
    names = [f"{n:04d}" for n in range(40)]
    root = _street(tmp_path / "street", names)
    mapping = {"shoes": ["Casual Shoes", "Sports Shoes", "Heels", "Flats", "Sandals"]}
    photos = street_photos(root, mapping)
    assert [p.name for p in photos] == [n for n in names if is_validation_photo(n)] and 0 < len(photos) < 40
    assert {p.name for p in street_photos(root, mapping, validation=False)} == {n for n in names
                                                                               if not is_validation_photo(n)}
    result = evaluate_street(demo_recommender, photos[:2], mapping, load_classes(), progress=False)
    assert result["photos"] == 2 and result["garments"] == 2 and result["crops"]["overall"]["n"] == 2
    assert 0 <= result["crops"]["overall"]["P@5"] <= result["crops"]["overall"]["hit@5"] <= 1
    assert result["localiser"]["box_recall_by_class"]["shoes"] == 1.0  # the photo's shoes are where we drew them
    assert 0 <= result["look"]["precision"] <= 1 and result["look"]["latency_ms"]["p50"] > 0
    with pytest.raises(FashionrecError, match="no labelled validation photos"):
        street_photos(root, {"hat": ["Caps"]})
    with pytest.raises(FashionrecError, match="is not a street-photo folder"):
        street_photos(tmp_path, mapping)


@pytest.mark.shared_data
def test_the_shared_street_photos_split_in_about_a_quarter(shared_data: Path) -> None:
    street = shared_data / "street-photos"
    mapping = json.loads((street / "mapping.json").read_text())
    validation, training = street_photos(street, mapping), street_photos(street, mapping, validation=False)
    assert 0.2 < len(validation) / (len(validation) + len(training)) < 0.3
    assert not {p.name for p in validation} & {p.name for p in training}


def test_the_evaluate_command_measures_a_street_folder(tmp_path: Path, demo_index: Path) -> None:
    from tests.conftest import run_cli

    root = _street(tmp_path / "street", [f"{n:04d}" for n in range(40)])
    (root / "mapping.json").write_text(json.dumps({"shoes": ["Casual Shoes", "Sports Shoes", "Heels", "Flats"]}))
    proc = run_cli("evaluate", "--index-dir", str(demo_index), "--street", str(root), "--sample", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["protocol"] == "street" and result["part"] == "validation" and result["photos"] == 2
    assert set(result["crops"]["by_class"]) == {"shoes"} and result["localiser"]["box_recall"] == 1.0
    text = run_cli("evaluate", "--index-dir", str(demo_index), "--street", str(root), "--sample", "2")
    assert text.returncode == 0 and "look precision" in text.stdout and text.stdout.count("shoes") == 1
    missing = run_cli("evaluate", "--index-dir", str(demo_index), "--street", str(tmp_path))
    assert missing.returncode == 2 and "cannot read mapping" in missing.stderr and missing.stderr.count("\n") == 1
    assert "Traceback" not in missing.stderr
