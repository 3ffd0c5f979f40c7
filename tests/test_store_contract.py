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


# writes: the same contract for every store and index kind ------------------------------------------------------
@pytest.fixture(params=[*FAISS_KINDS, "milvus"])
def writable(request: pytest.FixtureRequest, tmp_path: Path, vectors: np.ndarray) -> Iterator[tuple[VectorStore, CatalogDB]]:
    """A store of its own (the writes change it), with its database."""
    db = CatalogDB(tmp_path / "idx", create=True)
    manifests.write(db, MODEL)
    db.sync([(f"p{i:04d}", f"/img/{i}.jpg", "d0", meta(i)) for i in range(N)], COLUMNS)
    db.put_vectors([f"p{i:04d}" for i in range(N)], vectors)
    make = milvus_store if request.param == "milvus" else faiss_store(request.param)
    yield make(db, tmp_path / "idx"), db
    db.close()


def unit(seed: int, rows: int = 1) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(rows, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def merged(store: VectorStore) -> None:
    """Fold a store's pending writes into its main index, where it has one (FAISS), so both parts are checked."""
    merge = getattr(store, "merge", None)
    if merge is not None:
        merge()


def found(store: VectorStore, query: np.ndarray, k: int = K, **kw: object) -> list[str]:
    return [h.id for h in store.search(query, k, **kw)[0]]  # type: ignore[arg-type]


def test_a_written_product_is_found_at_once_and_a_replaced_one_by_its_new_photo_only(
    writable: tuple[VectorStore, CatalogDB], vectors: np.ndarray,
) -> None:
    store, _ = writable
    new, moved = unit(101), unit(102)
    store.upsert("new", new, {"gender": "Women", "articleType": "Heels"}, generation=5)
    assert store.generation == 5 and len(store) == N + 1
    assert found(store, new)[0] == "new"
    store.upsert("p0003", moved, meta(3), generation=6)
    assert len(store) == N + 1 and found(store, moved)[0] == "p0003"
    assert "p0003" not in found(store, vectors[[3]], 3)  # its old vector is gone from every part
    merged(store)
    assert found(store, new)[0] == "new" and found(store, moved)[0] == "p0003"
    assert "p0003" not in found(store, vectors[[3]], 3) and len(store) == N + 1


def test_removed_products_never_come_back_from_any_part(
    writable: tuple[VectorStore, CatalogDB], vectors: np.ndarray,
) -> None:
    store, _ = writable
    store.upsert("new", unit(103), meta(0))
    assert store.remove("p0005", generation=8) and store.remove("new", generation=9)
    assert not store.remove("never-there") and store.generation == 9 and len(store) == N - 1
    for _ in range(2):  # before and after the writes are merged into the main index
        for query in (vectors[[5]], unit(103)):
            assert not {"p0005", "new"} & set(found(store, query, 50))
            assert not {"p0005", "new"} & set(found(store, query, 50, filters={"gender": {"Women", "Men"}}))
        merged(store)


def test_a_product_with_several_photos_is_found_once_by_each_and_a_put_with_fewer_drops_the_rest(
    writable: tuple[VectorStore, CatalogDB],
) -> None:
    store, _ = writable
    photos = unit(104, 3)
    store.upsert("multi", photos, meta(1))
    assert len(store) == N + 1
    for n in range(3):
        hits = store.search(photos[[n]], K)[0]
        assert (hits[0].id, hits[0].photo) == ("multi", n) and [h.id for h in hits].count("multi") == 1
    store.upsert("multi", photos[:1], meta(1))
    merged(store)
    assert found(store, photos[[0]])[0] == "multi" and "multi" not in found(store, photos[[2]], 3)
    assert len(store) == N + 1


def test_new_metadata_is_what_filters_see(writable: tuple[VectorStore, CatalogDB], vectors: np.ndarray) -> None:
    store, _ = writable
    assert meta(6)["gender"] == "Men"
    store.set_metadata("p0006", {"gender": "Women", "articleType": "Heels"}, generation=3)
    assert store.generation == 3
    assert found(store, vectors[[6]], filters={"gender": {"Women"}})[0] == "p0006"
    assert "p0006" not in found(store, vectors[[6]], filters={"gender": {"Men"}})


def test_an_index_opened_after_a_write_cut_short_catches_up_from_the_database(
    writable: tuple[VectorStore, CatalogDB],
) -> None:
    """The database committed a product and a removal the store never got (the process was killed between)."""
    from fashionrec.catalog_db import StoredItem
    from fashionrec.index import Index

    store, db = writable
    folder = db.path.parent
    store.generation = db.generation  # what a publication records
    new = unit(105)
    db.put_item(StoredItem("cut-short", "/img/new.jpg", meta(2)), "d1", new[0])
    db.delete_item("p0009")
    reopened = Index.open(folder, store if getattr(store, "external", False) else None).store
    assert reopened.generation == db.generation and len(reopened) == N
    assert found(reopened, new)[0] == "cut-short"
    nine = db.vector("p0010")  # p0009 itself is gone from the database: ask with its neighbours' vectors
    assert nine is not None and "p0009" not in found(reopened, nine[None, :], N // 2)


def test_searches_running_beside_writes_and_merges_never_fail_nor_see_removed_products(
    writable: tuple[VectorStore, CatalogDB], vectors: np.ndarray,
) -> None:
    import threading

    store, _ = writable
    if hasattr(store, "merge_rows"):
        store.merge_rows = 16  # type: ignore[attr-defined]  # several background merges during the writes
    removed: set[str] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def search() -> None:
        try:
            while not stop.is_set():
                gone = set(removed)  # removed before this search started: never in its answer
                hits = store.search(vectors[[11, 12]], K)
                assert all(len(row) == K for row in hits)
                assert not gone & {h.id for row in hits for h in row}
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=search)
    thread.start()
    try:
        for n in range(48):
            store.upsert(f"w{n}", unit(200 + n), meta(n))
            if n % 3 == 0:
                store.remove(f"p{n:04d}")
                removed.add(f"p{n:04d}")
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[0]
    merged(store)
    assert all(found(store, unit(200 + n))[0] == f"w{n}" for n in range(48))
    assert len(store) == N + 48 - 16
