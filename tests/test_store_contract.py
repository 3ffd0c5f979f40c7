"""One contract, every vector store: the FAISS kinds and Milvus (Lite, the real engine) answer the same questions
the same way, on one synthetic index (exact answers are known, no model needed)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from fashionrec import manifest as manifests
from fashionrec.catalog_db import CatalogDB
from fashionrec.errors import FashionrecError
from fashionrec.filters import MetadataColumns
from fashionrec.manifest import Manifest
from fashionrec.publish import publish_faiss
from fashionrec.stores.base import VectorStore

N, DIM, K = 1200, 32, 5
COLUMNS = ["gender", "articleType"]
GENDERS = ["Men", "Women", "Unisex"]
TYPES = ["Heels", "Flats", "Shirts", "Tshirts"]
MODEL = Manifest(name="synthetic", dim=DIM, image_size=8)
FAISS_KINDS = ["flat", "hnsw", "ivf", "ivfsq", "ivfpqfs", "pcaivfsq"]


def meta(i: int) -> dict[str, str]:
    return {"gender": GENDERS[i % 3], "articleType": TYPES[i % 4]}


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    v = np.random.default_rng(7).normal(size=(N, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def synthetic_db(tmp_path_factory: pytest.TempPathFactory, vectors: np.ndarray) -> Iterator[CatalogDB]:
    db = CatalogDB(tmp_path_factory.mktemp("contract") / "idx", create=True)
    manifests.write(db, MODEL)
    db.sync([(f"p{i:04d}", f"/img/{i}.jpg", "d0", meta(i)) for i in range(N)], COLUMNS)
    db.put_vectors([f"p{i:04d}" for i in range(N)], vectors)
    yield db
    db.close()


def faiss_store(kind: str) -> Callable[[CatalogDB, Path], VectorStore]:
    def make(db: CatalogDB, folder: Path) -> VectorStore:
        store = publish_faiss(db, folder, MODEL, kind)  # type: ignore[arg-type]
        assert store.kind == kind
        store.meta = MetadataColumns(db.columns, [db.get(i).metadata for i in store.ids])
        return store

    return make


def milvus_store(db: CatalogDB, folder: Path) -> VectorStore:
    pytest.importorskip("milvus_lite", reason="Milvus Lite is not installed (pip install 'fashionrec[scale]')")
    from fashionrec.publish import publish_to_milvus
    from fashionrec.stores.milvus_store import MilvusStore

    uri = str(folder / "milvus.db")
    publish_to_milvus(db, uri, MODEL)
    return MilvusStore.open(uri)


@pytest.fixture(scope="module", params=[*FAISS_KINDS, "milvus"])
def store(request: pytest.FixtureRequest, synthetic_db: CatalogDB,
          tmp_path_factory: pytest.TempPathFactory) -> VectorStore:
    make = milvus_store if request.param == "milvus" else faiss_store(request.param)
    return make(synthetic_db, tmp_path_factory.mktemp(f"store-{request.param}"))


def test_it_describes_what_it_holds(store: VectorStore) -> None:
    assert len(store) == N and store.dim == DIM
    assert store.model == MODEL


def test_what_it_keeps_besides_vectors_agrees_with_the_database(
    store: VectorStore, synthetic_db: CatalogDB, vectors: np.ndarray,
) -> None:
    ids = ["p0000", "p0411", "p1199"]
    kept = store.stored_metadata(ids)
    assert set(kept) <= set(ids) and all(kept[i] == meta(int(i[1:])) for i in kept)
    values = store.stored_values("articleType")
    assert values is None or values == set(TYPES)
    stored = store.stored_vectors(ids)
    if stored is not None:  # an index kind that keeps its vectors gives them back (8-bit codes: nearly equal)
        np.testing.assert_allclose(stored, vectors[[0, 411, 1199]], atol=0.05)
    assert store.stored_vectors(["nope"]) is None


def test_an_item_finds_itself_first_and_scores_are_cosines_best_first(store: VectorStore, vectors: np.ndarray) -> None:
    picks = [0, 17, 411, 1199]
    rows = store.search(vectors[picks], K)
    assert len(rows) == len(picks)
    for i, hits in zip(picks, rows, strict=True):
        assert len(hits) == K and hits[0].id == f"p{i:04d}"
        assert hits[0].score == pytest.approx(1.0, abs=0.02)
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True) and all(-1.01 <= s <= 1.01 for s in scores)
        exact = vectors @ vectors[i]
        assert scores[1] <= float(np.sort(exact)[-2]) + 0.02  # no score above the true second best


def test_filters_apply_inside_the_search_and_still_return_k(store: VectorStore, vectors: np.ndarray) -> None:
    hits = store.search(vectors[[0]], K, filters={"gender": {"Women"}, "articleType": {"Flats", "Shirts"}})[0]
    assert len(hits) == K
    for hit in hits:
        i = int(hit.id[1:])
        assert meta(i)["gender"] == "Women" and meta(i)["articleType"] in {"Flats", "Shirts"}


def test_excluded_ids_never_come_back(store: VectorStore, vectors: np.ndarray) -> None:
    hits = store.search(vectors[[5]], K, exclude={"p0005"})[0]
    assert len(hits) == K and "p0005" not in {h.id for h in hits}


def test_an_empty_batch_gives_no_rows_and_an_unknown_column_is_refused(store: VectorStore) -> None:
    assert store.search(np.zeros((0, DIM), np.float32), K) == []
    with pytest.raises(FashionrecError, match="nosuch"):
        store.search(np.ones((1, DIM), np.float32) / np.sqrt(DIM), K, filters={"nosuch": {"x"}})
