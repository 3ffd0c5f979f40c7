"""The street-photo protocol: labelled garments come from the label maps (mapped labels covering 1 % of the photo),
only the validation part is measured, and crops, looks and the localiser are scored as the protocol says."""

from __future__ import annotations

import json
from pathlib import Path

from fashionrec.garments import load_classes
from fashionrec.recommend import Recommender
from fashionrec.street import street_photos
from fashionrec.street_eval import evaluate_street
from tests.conftest import street_folder

NAMES = ["null", "skin", "dress", "bag", "belt"]
MAPPING = {"dress": ["Dresses"], "bag": ["Handbags"], "belt": ["Belts"]}


def test_crops_looks_and_the_localiser_are_scored(tmp_path: Path, demo_recommender: Recommender) -> None:
    root = street_folder(tmp_path / "street", [f"{n:04d}" for n in range(40)])
    mapping = {"shoes": ["Casual Shoes", "Sports Shoes", "Heels", "Flats", "Sandals"]}
    photos = street_photos(root, mapping)
    result = evaluate_street(demo_recommender, photos[:2], mapping, load_classes(), progress=False)
    assert result["photos"] == 2 and result["garments"] == 2 and result["crops"]["overall"]["n"] == 2
    assert 0 <= result["crops"]["overall"]["P@5"] <= result["crops"]["overall"]["hit@5"] <= 1
    assert result["localiser"]["box_recall_by_class"]["shoes"] == 1.0  # the photo's shoes are where we drew them
    assert 0 <= result["look"]["precision"] <= 1 and result["look"]["latency_ms"]["p50"] > 0


def test_the_evaluate_command_measures_a_street_folder(tmp_path: Path, demo_index: Path) -> None:
    from tests.conftest import run_cli

    root = street_folder(tmp_path / "street", [f"{n:04d}" for n in range(40)])
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
