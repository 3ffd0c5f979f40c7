"""Indexing end to end on the demo catalogue: self-retrieval, filters, incremental updates, kill -9 resume."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionrec.catalog_db import CatalogDB
from fashionrec.errors import IndexFormatError
from fashionrec.indexing import index_catalog
from fashionrec.recommend import Recommender
from fashionrec.stores.faiss_store import INDEX_FILE, FaissStore
from tests.conftest import DEMO_CATALOG, REPO, kill_index_run


def _ids(catalog: Path) -> list[str]:
    with (catalog / "styles.csv").open(newline="") as f:
        return [row["id"] for row in csv.DictReader(f)]


def test_every_item_finds_itself_first(demo_index: Path) -> None:
    with Recommender.open(demo_index) as rec:
        ids = _ids(DEMO_CATALOG)[::15]
        for item_id in ids:
            results = rec.recommend(DEMO_CATALOG / "images" / f"{item_id}.jpg", k=5)
            assert results[0].id == item_id and results[0].score > 0.99
            assert len(results) == 5 and results[0].metadata["articleType"]


def test_filters_apply_inside_the_search(demo_index: Path) -> None:
    query = DEMO_CATALOG / "images" / f"{_ids(DEMO_CATALOG)[0]}.jpg"
    with Recommender.open(demo_index) as rec:
        # 10 Watches exist in the demo catalogue: a filtered query must return all 10 even if none is near the query.
        watches = rec.recommend(query, k=10, filters={"articleType": ["Watches"]})
        assert len(watches) == 10 and {r.metadata["articleType"] for r in watches} == {"Watches"}
        both = rec.recommend(query, k=50, filters={"gender": ["Women"], "articleType": ["Heels", "Flats"]})
        assert both and all(r.metadata["gender"] == "Women" and r.metadata["articleType"] in {"Heels", "Flats"} for r in both)
        assert rec.recommend(query, k=5, filters={"baseColour": ["No Such Colour"]}) == []


def test_similar_excludes_the_item_itself(demo_index: Path) -> None:
    item_id = _ids(DEMO_CATALOG)[3]
    with Recommender.open(demo_index) as rec:
        results = rec.similar(item_id, k=5)
        assert len(results) == 5 and item_id not in {r.id for r in results}
        assert results == sorted(results, key=lambda r: -r.score)


@pytest.mark.slow
def test_incremental_reindex_embeds_only_changes(demo_catalog_copy: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    first = index_catalog(demo_catalog_copy, index_dir, progress=False)
    assert first.embedded == 300
    again = index_catalog(demo_catalog_copy, index_dir, progress=False)
    assert again.embedded == 0 and again.sync.unchanged == 300

    ids = _ids(demo_catalog_copy)
    for item_id in ids[:3]:  # change 3 images
        Image.open(demo_catalog_copy / "images" / f"{item_id}.jpg").rotate(90).save(
            demo_catalog_copy / "images" / f"{item_id}.jpg")
    lines = (demo_catalog_copy / "styles.csv").read_text().splitlines()
    removed = {lines[-1].split(",")[0], lines[-2].split(",")[0]}
    new_line = lines[1].replace(ids[0], "999999", 1)
    (demo_catalog_copy / "styles.csv").write_text("\n".join(lines[:-2] + [new_line]) + "\n")
    Image.open(DEMO_CATALOG / "images" / f"{ids[5]}.jpg").save(demo_catalog_copy / "images" / "999999.jpg")

    update = index_catalog(demo_catalog_copy, index_dir, progress=False)
    assert (update.sync.added, update.sync.changed, update.sync.removed) == (1, 3, 2)
    assert update.embedded == 4 and update.total == 299
    store = FaissStore.load(index_dir)
    assert "999999" in store.ids and not removed & set(store.ids)


@pytest.mark.slow
def test_model_change_reembeds_everything(demo_catalog_copy: Path, tmp_path: Path) -> None:
    from fashionrec.modelspec import ModelSpec

    index_dir = tmp_path / "index"
    index_catalog(demo_catalog_copy, index_dir, model=ModelSpec("efficientnet-lite0", 128), progress=False)
    changed = index_catalog(demo_catalog_copy, index_dir, model=ModelSpec("efficientnet-lite0", 160), progress=False)
    assert changed.embedded == 300


@pytest.mark.slow
def test_int8_index_serves_itself_and_a_precision_change_reembeds(demo_catalog_copy: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    command = [*_index_cmd(demo_catalog_copy, index_dir), "--precision", "int8", "--json"]
    first = subprocess.run(command, capture_output=True, text=True, check=True)
    assert '"embedded": 300' in first.stdout
    again = subprocess.run(command, capture_output=True, text=True, check=True)
    assert '"embedded": 0' in again.stdout  # the recorded precision is the one asked for: nothing to redo
    with Recommender.open(index_dir) as rec:
        assert rec.embedder.precision == "int8"
        for item_id in _ids(demo_catalog_copy)[::30]:
            assert rec.recommend(demo_catalog_copy / "images" / f"{item_id}.jpg", k=3)[0].id == item_id
    back = subprocess.run(command[:-3] + ["--json"], capture_output=True, text=True, check=True)
    assert '"embedded": 300' in back.stdout


def _index_cmd(catalog: Path, index_dir: Path) -> list[str]:
    return [sys.executable, "-m", "fashionrec", "index", str(catalog), "--index-dir", str(index_dir),
            "--model", "efficientnet-lite0", "--image-size", "128", "--batch-size", "16"]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_index(demo_catalog_copy: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    reference = tmp_path / "reference"
    subprocess.run(_index_cmd(demo_catalog_copy, reference), check=True, env=env, capture_output=True)

    index_dir = tmp_path / "killed"
    done_before = kill_index_run(_index_cmd(demo_catalog_copy, index_dir), index_dir, env, after=48)
    assert 0 < done_before < 300, "the run should have been killed part-way"
    assert not (index_dir / INDEX_FILE).exists()

    resumed = subprocess.run(_index_cmd(demo_catalog_copy, index_dir) + ["--json"], check=True, env=env,
                             capture_output=True, text=True)
    assert f'"embedded": {300 - done_before}' in resumed.stdout

    a, b = FaissStore.load(reference), FaissStore.load(index_dir)
    assert a.ids == b.ids
    va, vb = a.index.reconstruct_n(0, len(a)), b.index.reconstruct_n(0, len(b))
    np.testing.assert_allclose(va, vb, atol=1e-4)


def test_corrupt_index_file_is_a_clear_error(demo_index: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(demo_index, copy)
    data = bytearray((copy / INDEX_FILE).read_bytes())
    data[-100] ^= 0xFF
    (copy / INDEX_FILE).write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="checksum"):
        FaissStore.load(copy)
    (copy / INDEX_FILE).write_bytes(b"<html>not an index</html>")
    with pytest.raises(IndexFormatError, match="not a fashionrec"):
        FaissStore.load(copy)
    with pytest.raises(IndexFormatError, match="no index"):
        CatalogDB(tmp_path / "nothing-here")
