"""``fashionrec duplicates``: planted exact and near copies in a real subset of the shared catalogue are
found, each grouped with its original, and a clean subset gives nothing."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionrec.cli import main
from fashionrec.duplicates import DEFAULT_THRESHOLD, find_duplicates, group_pairs, similar_pairs
from fashionrec.errors import FashionrecError
from fashionrec.indexing import index_catalog
from fashionrec.modelspec import ModelSpec

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips this module (the fast tier)

MODEL = ModelSpec("efficientnet-lite0")  # the model benchmarks/duplicates_threshold.py measured the threshold on
PRODUCTS = 40


def real_subset(shared: Path, root: Path, count: int) -> tuple[Path, list[dict[str, str]]]:
    """The first ``count`` products of the shared catalogue (with a photo) as a catalogue folder."""
    source = shared / "catalogue"
    with (source / "styles.csv").open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        rows = [r for r in reader if (source / "images" / f"{r['id']}.jpg").is_file()][:count]
    (root / "images").mkdir(parents=True)
    for row in rows:
        shutil.copy(source / "images" / f"{row['id']}.jpg", root / "images" / f"{row['id']}.jpg")
    write_rows(root, fields, rows)
    return root, rows


def write_rows(root: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
    with (root / "styles.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def clean_and_planted(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """Indexes of the clean subset and of the same subset with three planted copies: {copy id: original id}."""
    root = tmp_path_factory.mktemp("duplicates")
    clean, rows = real_subset(shared_data, root / "clean", PRODUCTS)
    planted = root / "planted"
    shutil.copytree(clean, planted)
    originals = {"copy-exact": rows[3]["id"], "copy-upscaled": rows[11]["id"], "copy-jpeg60": rows[25]["id"]}
    for copy_id, original in originals.items():
        data = (planted / "images" / f"{original}.jpg").read_bytes()
        image = Image.open(io.BytesIO(data)).convert("RGB")
        if copy_id == "copy-upscaled":  # the same photo uploaded again at twice the size
            data = jpeg(image.resize((image.width * 2, image.height * 2), Image.Resampling.BICUBIC), 90)
        elif copy_id == "copy-jpeg60":  # re-encoded at a lower quality
            data = jpeg(image, 60)
        (planted / "images" / f"{copy_id}.jpg").write_bytes(data)
        rows.append({**next(r for r in rows if r["id"] == original), "id": copy_id})
    write_rows(planted, list(rows[0]), rows)
    for folder in (clean, planted):
        index_catalog(folder, root / f"{folder.name}-index", model=MODEL, progress=False)
    return root / "clean-index", root / "planted-index", originals


def test_planted_copies_are_found_with_their_originals(clean_and_planted) -> None:
    _, planted, originals = clean_and_planted
    groups = find_duplicates(planted)
    assert sorted(sorted(g.ids) for g in groups) == sorted(sorted([c, o]) for c, o in originals.items())
    exact = next(g for g in groups if "copy-exact" in g.ids)
    assert exact.min_cosine == pytest.approx(1.0, abs=1e-5)
    assert all(DEFAULT_THRESHOLD <= g.min_cosine <= g.max_cosine for g in groups)


def test_a_clean_subset_has_no_duplicates(clean_and_planted) -> None:
    clean, _, _ = clean_and_planted
    assert find_duplicates(clean) == []


def test_the_catalogue_report_lists_them_too(clean_and_planted) -> None:
    clean, planted, originals = clean_and_planted
    section = json.loads((planted / "catalog_report.json").read_text())["near_duplicates"]
    assert section["threshold"] == DEFAULT_THRESHOLD
    assert sorted(g["ids"] for g in section["groups"]) == sorted(sorted([c, o]) for c, o in originals.items())
    assert json.loads((clean / "catalog_report.json").read_text())["near_duplicates"]["groups"] == []


def test_cli_json_and_text(clean_and_planted, capsys: pytest.CaptureFixture[str]) -> None:
    clean, planted, originals = clean_and_planted
    assert main(["duplicates", "--index-dir", str(planted), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["threshold"] == DEFAULT_THRESHOLD and len(answer["groups"]) == len(originals)
    assert main(["duplicates", "--index-dir", str(clean)]) == 0
    assert capsys.readouterr().out.startswith("no duplicates")
    assert main(["duplicates", "--index-dir", str(clean), "--threshold", "0"]) == 2
    assert "threshold must be a cosine in (0, 1]" in capsys.readouterr().err


def test_groups_join_chains_and_keep_the_threshold_inclusive() -> None:
    vectors = np.eye(4, dtype=np.float32)
    vectors[1] = vectors[0]
    vectors[2] = 0.6 * vectors[0] + 0.8 * vectors[3]  # cosine 0.6 to rows 0 and 1, 0.8 to row 3
    pairs = similar_pairs(vectors, 0.6)
    assert {(i, j) for i, j, _ in pairs} == {(0, 1), (0, 2), (1, 2), (2, 3)}
    assert [rows for rows, _, _ in group_pairs(4, pairs)] == [[0, 1, 2, 3]]
    assert [rows for rows, _, _ in group_pairs(4, similar_pairs(vectors, 0.9))] == [[0, 1]]
    with pytest.raises(FashionrecError, match="threshold"):
        similar_pairs(vectors, 1.5)
