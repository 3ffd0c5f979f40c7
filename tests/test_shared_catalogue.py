"""The core engine on the real shared catalogue (a seeded subset of its raw rows and images, skipped when the data
is absent): defects reported, self-retrieval, filters, incremental counts, and kill -9 resume."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionrec.indexing import index_catalog
from fashionrec.modelspec import ModelSpec
from fashionrec.recommend import Recommender
from fashionrec.stores.faiss_store import INDEX_FILE, FaissStore
from tests.conftest import REPO, kill_index_run

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

PRODUCTS = 360  # well-formed rows with an image, sampled across the whole file
MALFORMED = 3  # raw rows with unquoted commas (11 or 12 fields)
WITHOUT_IMAGE = 2  # well-formed rows whose image is not in the data set
SPEC = ModelSpec("efficientnet-lite0", 128)  # the behaviour under test does not depend on the backbone


def _build_subset(shared: Path, target: Path) -> list[str]:
    """Copy a seeded sample of the real ``styles.csv`` lines (unchanged bytes) and their images into ``target``;
    return the ids of the products that have an image, in file order."""
    source = shared / "catalogue"
    lines = (source / "styles.csv").read_text(encoding="utf-8").splitlines()
    header, body = lines[0], lines[1:]
    width = len(header.split(","))
    fields = [next(csv.reader(io.StringIO(line))) for line in body]
    good = [n for n, f in enumerate(fields) if len(f) == width and (source / "images" / f"{f[0]}.jpg").is_file()]
    bad = [n for n, f in enumerate(fields) if len(f) != width]
    missing = [n for n, f in enumerate(fields) if len(f) == width and not (source / "images" / f"{f[0]}.jpg").is_file()]
    rng = random.Random(0)
    keep = sorted(rng.sample(good, PRODUCTS) + rng.sample(bad, MALFORMED) + rng.sample(missing, WITHOUT_IMAGE))
    (target / "images").mkdir(parents=True)
    (target / "styles.csv").write_text("\n".join([header] + [body[n] for n in keep]) + "\n", encoding="utf-8")
    ids = [fields[n][0] for n in keep if n in set(good)]
    for item_id in ids:
        shutil.copyfile(source / "images" / f"{item_id}.jpg", target / "images" / f"{item_id}.jpg")
    return ids


@pytest.fixture(scope="module")
def subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A read-only subset catalogue of the shared data and the ids that have images."""
    target = tmp_path_factory.mktemp("shared-subset") / "catalog"
    return target, _build_subset(shared_data, target)


@pytest.fixture(scope="module")
def subset_index(subset: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("shared-index")
    index_catalog(subset[0], index_dir, model=SPEC, progress=False)
    return index_dir


@pytest.fixture
def subset_copy(subset: tuple[Path, list[str]], tmp_path: Path) -> tuple[Path, list[str]]:
    target = tmp_path / "catalog"
    shutil.copytree(subset[0], target)
    return target, list(subset[1])


def test_real_rows_index_and_their_defects_are_reported(subset_index: Path) -> None:
    report = json.loads((subset_index / "catalog_report.json").read_text())
    assert len(report["malformed_rows"]) == MALFORMED
    assert len(report["missing_images"]) == WITHOUT_IMAGE
    with Recommender.open(subset_index) as rec:
        assert len(rec) == PRODUCTS


def test_every_product_finds_itself_first(subset: tuple[Path, list[str]], subset_index: Path) -> None:
    catalog, ids = subset
    with Recommender.open(subset_index) as rec:
        for item_id in ids[::9]:
            results = rec.recommend(catalog / "images" / f"{item_id}.jpg", k=5)
            assert results[0].id == item_id and results[0].score > 0.99, item_id


def test_filters_hold_and_still_return_k(subset: tuple[Path, list[str]], subset_index: Path) -> None:
    catalog, ids = subset
    with Recommender.open(subset_index) as rec:
        women = [i for i in ids if rec.item(i).metadata["gender"] == "Women"]
        query = catalog / "images" / f"{next(i for i in ids if i not in women)}.jpg"  # a man's or unisex product
        results = rec.recommend(query, k=10, filters={"gender": ["Women"]})
        assert len(results) == 10 and all(r.metadata["gender"] == "Women" for r in results)
        types = {"Tshirts", "Shirts"}
        matching = [i for i in women if rec.item(i).metadata["articleType"] in types]
        both = rec.recommend(query, k=len(matching) + 5, filters={"gender": ["Women"], "articleType": sorted(types)})
        assert sorted(r.id for r in both) == sorted(matching)  # every match, and nothing else


def test_incremental_reindex_embeds_only_the_changed_products(subset_copy: tuple[Path, list[str]],
                                                              tmp_path: Path) -> None:
    catalog, ids = subset_copy
    index_dir = tmp_path / "index"
    assert index_catalog(catalog, index_dir, model=SPEC, progress=False).embedded == PRODUCTS
    for item_id in ids[:3]:  # three product photos replaced
        path = catalog / "images" / f"{item_id}.jpg"
        Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(path)
    lines = (catalog / "styles.csv").read_text(encoding="utf-8").splitlines()
    gone = ids[-2:]
    kept = [line for line in lines if line.split(",", 1)[0] not in gone]
    (catalog / "styles.csv").write_text("\n".join(kept) + "\n", encoding="utf-8")
    update = index_catalog(catalog, index_dir, model=SPEC, progress=False)
    assert (update.sync.added, update.sync.changed, update.sync.removed, update.embedded) == (0, 3, 2, 3)
    assert update.total == PRODUCTS - 2 and not set(gone) & set(FaissStore.load(index_dir).ids)


def _index_cmd(catalog: Path, index_dir: Path) -> list[str]:
    return [sys.executable, "-m", "fashionrec", "index", str(catalog), "--index-dir", str(index_dir), "--model",
            SPEC.name, "--image-size", str(SPEC.image_size), "--batch-size", "16", "--json"]


def test_killed_run_resumes_to_the_uninterrupted_index(subset: tuple[Path, list[str]], subset_index: Path,
                                                       tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    index_dir = tmp_path / "killed"
    done = kill_index_run(_index_cmd(subset[0], index_dir), index_dir, env, after=64)
    assert 0 < done < PRODUCTS, "the run should have been killed part-way"
    resumed = subprocess.run(_index_cmd(subset[0], index_dir), check=True, env=env, capture_output=True, text=True)
    assert json.loads(resumed.stdout)["embedded"] == PRODUCTS - done  # finished batches are not redone
    clean, after = FaissStore.load(subset_index), FaissStore.load(index_dir)
    assert clean.ids == after.ids
    np.testing.assert_allclose(clean.index.reconstruct_n(0, len(clean)), after.index.reconstruct_n(0, len(after)),
                               atol=1e-4)
    assert (index_dir / INDEX_FILE).is_file()
