"""The demo catalogue indexed THROUGH RAY (a local 2-CPU instance) INTO MILVUS LITE, checked against the local
engine + FAISS: same vectors, same top-5, filters honoured, and an update/delete round through the CLI."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fashionrec.catalog_db import open_db
from fashionrec.cli import main
from fashionrec.engines.ray_engine import RayEngine
from fashionrec.indexing import index_catalog
from fashionrec.modelspec import ModelSpec
from fashionrec.publish import MilvusPublisher
from fashionrec.recommend import Recommender
from fashionrec.stores.milvus_store import MilvusStore
from tests.conftest import DEMO_CATALOG, DEMO_QUERIES

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips this module (the fast tier)

SPEC = ModelSpec("efficientnet-lite0", 128)  # the model does not matter here, only that both paths use the same
SPEC_FLAGS = ["--model", SPEC.name, "--image-size", str(SPEC.image_size)]
QUERIES = sorted(DEMO_QUERIES.glob("*.jpg"))
FILTERS = [None, {"gender": ["Women"]}, {"gender": ["Men"], "masterCategory": ["Footwear", "Accessories"]}]


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance for the module (starting Ray costs seconds); the engine reuses it."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_milvus(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The demo catalogue embedded by Ray actors and published to Milvus Lite: (index dir, Milvus URI)."""
    root = tmp_path_factory.mktemp("ray-milvus")
    uri = str(root / "m.db")
    result = index_catalog(DEMO_CATALOG, root / "idx", model=SPEC, progress=False, engine=RayEngine(SPEC),
                           publish=MilvusPublisher(uri))
    assert (result.embedded, result.total, result.index_kind) == (300, 300, "external")
    return root / "idx", uri


@pytest.fixture(scope="module")
def local_faiss(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same catalogue embedded in-process and published as a FAISS file."""
    index_dir = tmp_path_factory.mktemp("local-faiss")
    index_catalog(DEMO_CATALOG, index_dir, model=SPEC, progress=False)
    return index_dir


def test_ray_vectors_equal_local_vectors(ray_milvus: tuple[Path, str], local_faiss: Path) -> None:
    with open_db(ray_milvus[0]) as ray_db, open_db(local_faiss) as local_db:
        (ray_ids, ray_vectors), (local_ids, local_vectors) = ray_db.vectors(1280), local_db.vectors(1280)
    assert ray_ids == local_ids and len(ray_ids) == 300
    assert np.abs(ray_vectors - local_vectors).max() < 1e-4


def test_top5_agree_between_local_faiss_and_ray_milvus(ray_milvus: tuple[Path, str], local_faiss: Path) -> None:
    index_dir, uri = ray_milvus
    with Recommender.open(local_faiss) as faiss_rec, \
            Recommender.open(index_dir, store=MilvusStore.open(uri)) as milvus_rec:
        vectors = faiss_rec.embed(QUERIES)
        for filters in FILTERS:
            want = faiss_rec.recommend_vectors(vectors, 5, filters)
            got = milvus_rec.recommend_vectors(vectors, 5, filters)
            assert [[r.id for r in row] for row in got] == [[r.id for r in row] for row in want]
            for g, w in zip(got, want):
                np.testing.assert_allclose([r.score for r in g], [r.score for r in w], atol=1e-4)
        for item_id in ["1548", "2192"]:
            assert [r.id for r in milvus_rec.similar(item_id, 5)] == [r.id for r in faiss_rec.similar(item_id, 5)]
            assert item_id not in {r.id for r in milvus_rec.similar(item_id, 5)}


def test_milvus_filters_return_only_matches_and_k_when_k_match(ray_milvus: tuple[Path, str]) -> None:
    index_dir, uri = ray_milvus
    filters = {"gender": ["Women"], "masterCategory": ["Footwear"]}
    with Recommender.open(index_dir, store=MilvusStore.open(uri)) as rec:
        matching = [m for m in rec.db.iter_items() if m.metadata["gender"] == "Women"
                    and m.metadata["masterCategory"] == "Footwear"]
        assert 5 < len(matching) < 100
        for query in QUERIES:
            results = rec.recommend(query, k=5, filters=filters)
            assert len(results) == 5
            assert all(r.metadata["gender"] == "Women" and r.metadata["masterCategory"] == "Footwear" for r in results)
            assert {r.id for r in rec.recommend(query, k=200, filters=filters)} == {m.id for m in matching}


def _cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]  # the CLI's one error line, when there is one
    return json.loads(captured.out)


def test_update_and_delete_through_the_cli(
    ray_local: None, ray_milvus: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog, index_dir, uri = tmp_path / "catalog", tmp_path / "idx", str(tmp_path / "m.db")
    shutil.copytree(DEMO_CATALOG, catalog)
    shutil.copytree(ray_milvus[0], index_dir)
    index = ["index", str(catalog), "--index-dir", str(index_dir), *SPEC_FLAGS, "--engine", "ray",
             "--store", "milvus", "--milvus-uri", uri, "--json"]
    first = _cli_json(capsys, *index)  # nothing to embed: the copied SQLite is published to a fresh collection
    assert (first["embedded"], first["milvus"]["upserted"], first["milvus"]["recreated"]) == (0, 300, True)

    with (catalog / "styles.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    changed, donor, removed, broken = (rows[n]["id"] for n in (0, 1, 2, 3))
    shutil.copyfile(catalog / "images" / f"{donor}.jpg", catalog / "images" / f"{changed}.jpg")
    (catalog / "images" / f"{broken}.jpg").write_bytes(b"not a jpeg")
    with (catalog / "styles.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if r["id"] != removed)

    second = _cli_json(capsys, *index)
    assert (second["changed"], second["removed"], second["embedded"], second["unreadable"]) == (2, 1, 1, 1)
    assert (second["milvus"]["upserted"], second["milvus"]["deleted"]) == (1, 2)

    with open_db(index_dir) as db, open_db(ray_milvus[0]) as before:
        donor_vector, removed_vector = db.vector(donor), before.vector(removed)
    store = MilvusStore.open(uri)
    assert len(store) == 298
    top = store.search(donor_vector[None, :], 2)[0]  # the changed item now has the donor's image, so its vector
    assert {h.id for h in top} == {changed, donor} and min(h.score for h in top) > 1 - 1e-4
    assert not {removed, broken} & {h.id for h in store.search(removed_vector[None, :], 298)[0]}

    out = _cli_json(capsys, "recommend", str(QUERIES[0]), "--index-dir", str(index_dir), "--store", "milvus",
                    "--milvus-uri", uri, "--filter", "gender=Women", "-k", "4", "--json")
    assert len(out["results"]) == 4 and all(r["gender"] == "Women" for r in out["results"])
