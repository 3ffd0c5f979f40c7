"""Training the localiser and the kind classifier: a tiny run of each recipe on CPU makes a network that the
inference side opens (metadata, classes, checksummed card), is checkpointed, and resumes instead of starting over."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionrec.garment_train import GarmentTrainConfig, evaluate_localiser, train_localiser
from fashionrec.garments import GarmentLocaliser, load_classes
from fashionrec.kind_train import KindTrainConfig, prepare, train
from fashionrec.kinds import OTHER, KindClassifier
from tests.test_garments import STREET_PHOTO

pytestmark = pytest.mark.slow
LABELS = ["null", "skin", "hair", "bag", "dress", "shoes", "jeans"]


def _street(root: Path, count: int = 8) -> Path:
    (root / "photos").mkdir(parents=True)
    (root / "masks").mkdir()
    photo = Image.open(STREET_PHOTO).convert("RGB")
    labels = np.zeros((photo.height, photo.width), np.uint8)
    labels[int(photo.height * 0.85):, 140:220] = 5  # shoes
    labels[int(photo.height * 0.4):int(photo.height * 0.85), 120:240] = 6  # jeans
    for n in range(count):
        photo.save(root / "photos" / f"{n:04d}.jpg")
        Image.fromarray(labels).save(root / "masks" / f"{n:04d}.png")
    (root / "labels.json").write_text(json.dumps({"labels": LABELS, "tags": {}}))
    (root / "mapping.json").write_text(json.dumps({"shoes": ["Casual Shoes"], "jeans": ["Jeans"], "bag": ["Handbags"]}))
    return root


def test_a_tiny_localiser_run_exports_resumes_and_evaluates(tmp_path: Path) -> None:
    street = _street(tmp_path / "street")
    config = GarmentTrainConfig(width=64, height=96, epochs=2, batch_size=4)
    output, work = tmp_path / "g.onnx", tmp_path / "work"
    card = train_localiser(street, output, work, config)
    assert (work / "checkpoint.pt").is_file() and [h["epoch"] for h in card["history"]] == [1, 2]  # type: ignore[index]
    written = json.loads(output.with_suffix(".json").read_text())
    assert written["sha256"] == card["sha256"] and written["config"]["epochs"] == 2
    localiser = GarmentLocaliser.open(output)
    assert localiser.trained_classes == load_classes().names and (localiser.width, localiser.height) == (64, 96)
    assert isinstance(localiser.find(Image.open(STREET_PHOTO)), list)
    again = train_localiser(street, output, work, config)  # resumes after the last epoch: nothing to train
    assert again["history"] == card["history"]
    measured = train_localiser(street, output, work, config, evaluate_only=True)
    assert measured["epochs_done"] == 2 and "mean_iou" in measured["validation"]  # type: ignore[operator]
    with pytest.raises(SystemExit, match="another configuration"):
        train_localiser(street, output, work, GarmentTrainConfig(width=64, height=96, epochs=3, batch_size=4))


def test_localiser_metrics_score_a_perfect_and_an_empty_prediction() -> None:
    maps = np.zeros((1, 40, 40), np.uint8)
    maps[0, 20:40, 10:30] = 1
    perfect = np.zeros((1, 3, 10, 10), np.float32)
    perfect[0, 0] = 1
    perfect[0, 0, 5:10, 2:8], perfect[0, 1, 5:10, 2:8] = 0, 1
    result = evaluate_localiser(perfect, maps, ("dress", "bag"))
    assert result["per_class"]["dress"]["box_recall"] == 1.0 and result["per_class"]["dress"]["iou"] > 0.6  # type: ignore[index]
    empty = np.zeros((1, 3, 10, 10), np.float32)
    empty[0, 0] = 1
    assert evaluate_localiser(empty, maps, ("dress", "bag"))["box_recall"] == 0.0


def test_a_tiny_kind_run_prepares_trains_and_opens(tmp_path: Path) -> None:
    street = _street(tmp_path / "street", count=16)
    photos = tmp_path / "photos"
    for name in ("dress", "shoes"):
        (photos / name).mkdir(parents=True)
        for n in range(3):
            Image.new("RGB", (60, 80), (40 * n, 100, 200)).save(photos / name / f"{n}.jpg")
    count = prepare(tmp_path / "examples", load_classes(), catalogue=None, photos=photos,
                    mapping={"dress": ["Dresses"], "shoes": ["Heels"]}, street=street, per_type=5, seed=0)
    spec = json.loads((tmp_path / "examples" / "examples.json").read_text())
    sources = {e["source"] for e in spec["examples"]}
    assert count == len(spec["examples"]) and {"photos", "street", "street-validation"} <= sources
    assert {e["class"] for e in spec["examples"]} >= {"dress", "shoes", "trousers"} and spec["classes"][-1] == OTHER
    card = train(tmp_path / "examples", tmp_path / "k.onnx", tmp_path / "work", KindTrainConfig(epochs=1, batch_size=8))
    assert set(card["accuracy"]) == sources
    classifier = KindClassifier.open(tmp_path / "k.onnx")
    assert classifier.classes == tuple(spec["classes"]) and classifier.reads == ("fashion",)
    assert classifier.probabilities(np.zeros((2, 3, 128, 128), np.float32)).shape == (2, len(spec["classes"]))
