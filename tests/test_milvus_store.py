"""The Milvus store against the real engine (Milvus Lite), on a synthetic index: no model needed, so every case
(odd column names, quotes and backslashes in values, incremental publish) is cheap to set up exactly."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fashionrec import manifest as manifests
from fashionrec.catalog_db import CatalogDB
from fashionrec.errors import FashionrecError
from fashionrec.filters import MetadataColumns, normalise_filters
from fashionrec.index import Index
from fashionrec.manifest import Manifest
from fashionrec.publish import MilvusPublisher, publish_faiss, publish_to_milvus
from fashionrec.recommend import Recommender
from fashionrec.stores.milvus_store import (
    MilvusStore,
    field_name,
    filter_expression,
    quote,
)

DIM = 16
COLUMNS = ["gender", "article Type", "in", "note"]
GENDERS = ["Men", "Women", 'Wo"men', "back\\slash"]
TYPES = ["Heels", "Flats", "Shirts", "it's", "new\nline", "ünïcode"]
MODEL = Manifest(name="synthetic", dim=DIM, image_size=8)


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _rows(n: int, digest: str = "d0") -> list[tuple[str, str, str, dict[str, str]]]:
    return [
        (f"p{i:03d}", f"/img/{i}.jpg", digest,
         {"gender": GENDERS[i % 4], "article Type": TYPES[i % 6], "in": str(i % 2), "note": f"item {i}"})
        for i in range(n)
    ]


def _make_index(index_dir: Path, n: int = 240, seed: int = 0) -> CatalogDB:
    db = CatalogDB(index_dir, create=True)
    manifests.write(db, MODEL)
    db.sync(_rows(n), COLUMNS)
    db.put_vectors([r[0] for r in _rows(n)], _unit(np.random.default_rng(seed), n))
    return db


@pytest.fixture
def index(tmp_path: Path) -> tuple[CatalogDB, str]:
    """A synthetic index and the Milvus Lite URI it is published to."""
    db = _make_index(tmp_path / "idx")
    uri = str(tmp_path / "m.db")
    publish_to_milvus(db, uri, MODEL)
    yield db, uri
    db.close()


def _faiss(db: CatalogDB, index_dir: Path):
    store = publish_faiss(db, index_dir, MODEL, "flat")
    store.meta = MetadataColumns(db.columns, [db.get(i).metadata for i in store.ids])
    return store


def test_filter_expression_is_milvus_syntax() -> None:
    filters = normalise_filters({"gender": ["Women"], "articleType": ["Heels", "Flats"]})
    assert filter_expression(filters) == 'articleType in ["Flats", "Heels"] and gender in ["Women"]'
    assert filter_expression({}, {"a", "b"}) == 'id not in ["a", "b"]'
    assert filter_expression(None) == ""


def test_quote_escapes_quotes_backslashes_and_line_breaks() -> None:
    assert quote('Wo"men') == '"Wo\\"men"'
    assert quote("back\\slash") == '"back\\\\slash"'
    assert quote("a\nb\tc") == '"a\\nb\\tc"'
    assert quote("it's") == '"it\'s"'


def test_field_names_are_identifiers_and_distinct() -> None:
    assert field_name("gender") == "gender"
    names = [field_name(c) for c in ["article Type", "in", "id", "embedding", "colour/shade", "Ünï"]]
    assert all(n.isidentifier() and n.startswith("col_") for n in names)
    assert len(set(names)) == len(names)


def test_search_matches_faiss_exactly(index: tuple[CatalogDB, str], tmp_path: Path) -> None:
    db, uri = index
    milvus = MilvusStore.open(uri)
    faiss_store = _faiss(db, tmp_path / "idx")
    queries = _unit(np.random.default_rng(7), 12)
    for filters in [None, {"gender": ['Wo"men']}, {"article Type": ["new\nline", "it's"], "in": ["1"]}]:
        f = normalise_filters(filters, COLUMNS)
        got_rows, want_rows = milvus.search(queries, 5, f), faiss_store.search(queries, 5, f)
        assert len(got_rows) == len(want_rows) == len(queries)  # zip() below would hide missing rows
        for got, want in zip(got_rows, want_rows):
            assert [h.id for h in got] == [h.id for h in want]
            np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=1e-5)


def test_filters_return_only_matches_and_k_when_k_match(index: tuple[CatalogDB, str]) -> None:
    _, uri = index
    store = MilvusStore.open(uri)
    filters = normalise_filters({"gender": ["back\\slash"], "article Type": ["ünïcode", "Flats"]}, COLUMNS)
    matching = {item_id for item_id, _, _, meta in _rows(240)
                if meta["gender"] == "back\\slash" and meta["article Type"] in filters["article Type"]}
    assert len(matching) == 40  # i % 4 == 3 and i % 6 in {1, 5}: i % 12 in {7, 11}
    hits = store.search(_unit(np.random.default_rng(3), 2), 10, filters)
    assert len(hits) == 2 and all(len(row) == 10 and {h.id for h in row} <= matching for row in hits)
    everything = store.search(_unit(np.random.default_rng(4), 1), 50, filters)[0]
    assert {h.id for h in everything} == matching


def test_exclude_removes_ids_even_the_nearest(index: tuple[CatalogDB, str]) -> None:
    db, uri = index
    store = MilvusStore.open(uri)
    query = db.vector("p010")[None, :]
    assert store.search(query, 1)[0][0].id == "p010"
    hits = store.search(query, 5, normalise_filters({"in": ["0"]}, COLUMNS), exclude={"p010", "p012"})[0]
    assert len(hits) == 5 and not {"p010", "p012"} & {h.id for h in hits}


def test_unknown_filter_column_is_a_user_error(index: tuple[CatalogDB, str]) -> None:
    with pytest.raises(FashionrecError, match="unknown filter column 'colour'"):
        MilvusStore.open(index[1]).search(np.ones((1, DIM), np.float32), 3, {"colour": frozenset({"Red"})})


def test_republish_touches_only_what_changed(index: tuple[CatalogDB, str]) -> None:
    db, uri = index
    again = publish_to_milvus(db, uri, MODEL)
    assert (again.upserted, again.deleted, again.unchanged, again.recreated) == (0, 0, 240, False)

    rows = _rows(240)
    del rows[5:7]  # p005, p006 leave the catalogue
    rows[0] = (*rows[0][:2], "d1", rows[0][3])  # p000: new image -> new vector
    rows[1] = (*rows[1][:3], {**rows[1][3], "gender": "Men"})  # p001 (was Women): metadata only
    rows[2] = (*rows[2][:3], {**rows[2][3], "note": "on sale"})  # p002: metadata only
    db.sync(rows, COLUMNS)
    new_vector = _unit(np.random.default_rng(99), 1)
    db.put_vectors(["p000"], new_vector)

    counts = publish_to_milvus(db, uri, MODEL)
    assert (counts.upserted, counts.deleted) == (3, 2)
    store = MilvusStore.open(uri)
    assert len(store) == 238
    top = store.search(new_vector, 1)[0][0]
    assert top.id == "p000" and top.score == pytest.approx(1.0, abs=1e-5)
    gone = store.search(np.vstack([db.vector("p004"), _unit(np.random.default_rng(5), 1)]), 238)
    assert [len(row) for row in gone] == [238, 238]  # every product, so the deleted ones would be there
    assert all(not {"p005", "p006"} & {h.id for h in row} for row in gone)
    on_sale = store.search(new_vector, 5, normalise_filters({"note": ["on sale"]}, COLUMNS))[0]
    assert [h.id for h in on_sale] == ["p002"]


def test_model_change_republishes_everything(index: tuple[CatalogDB, str]) -> None:
    db, uri = index
    counts = publish_to_milvus(db, uri, replace(MODEL, image_size=16))
    assert counts.upserted == 240 and not counts.recreated
    assert MilvusStore.open(uri).model == replace(MODEL, image_size=16)


def test_new_dimension_recreates_the_collection(index: tuple[CatalogDB, str]) -> None:
    db, uri = index
    db.put_vectors([r[0] for r in _rows(240)], np.ones((240, 8), np.float32) / np.sqrt(8))
    counts = publish_to_milvus(db, uri, replace(MODEL, dim=8))
    assert counts.recreated and counts.upserted == 240
    assert MilvusStore.open(uri).dim == 8


def test_an_index_refuses_a_collection_from_elsewhere(index: tuple[CatalogDB, str], tmp_path: Path) -> None:
    db, uri = index
    publish_faiss(db, tmp_path / "idx", MODEL, "flat")
    with Index.open(tmp_path / "idx", MilvusStore.open(uri)) as opened:
        assert len(opened) == 240
    other = _make_index(tmp_path / "other", n=100, seed=1)
    publish_faiss(other, tmp_path / "other", MODEL, "flat")
    other.close()
    with pytest.raises(FashionrecError, match="does not match"):
        Index.open(tmp_path / "other", MilvusStore.open(uri))


def test_bad_uris_and_missing_collections_are_one_line_errors(index: tuple[CatalogDB, str], tmp_path: Path) -> None:
    with pytest.raises(FashionrecError, match="needs a URI"):
        MilvusStore.open("")
    with pytest.raises(FashionrecError, match="bad Milvus URI"):
        MilvusStore.open("milvus-data")
    with pytest.raises(FashionrecError, match="no Milvus Lite database"):
        MilvusStore.open(str(tmp_path / "typo.db"))
    assert not (tmp_path / "typo.db").exists()
    with pytest.raises(FashionrecError, match="no Milvus collection 'other'"):
        MilvusStore.open(index[1], "other")


def test_a_foreign_collection_is_neither_searched_nor_replaced(index: tuple[CatalogDB, str]) -> None:
    db, uri = index
    client = MilvusStore.open(uri).client
    client.create_collection("theirs", dimension=DIM)
    with pytest.raises(FashionrecError, match="not made by fashionrec"):
        publish_to_milvus(db, uri, MODEL, collection="theirs")
    assert client.has_collection("theirs")


def test_milvus_publishes_head_space_vectors(trained_index: Path, tmp_path: Path) -> None:
    pytest.importorskip("pymilvus")
    index_dir = tmp_path / "index"
    shutil.copytree(trained_index, index_dir)
    uri = str(tmp_path / "m.db")
    db = CatalogDB(index_dir)
    try:
        MilvusPublisher(uri)(db, index_dir, manifests.read(db))
    finally:
        db.close()
    with Recommender.open(index_dir) as faiss_rec, Recommender.open(
        index_dir, store=MilvusStore.open(uri)
    ) as milvus_rec:
        assert milvus_rec.store.model is not None and faiss_rec.head is not None
        assert milvus_rec.store.model.head == faiss_rec.head.fingerprint
        item_id = faiss_rec.store.ids[3]
        assert [r.id for r in milvus_rec.similar(item_id, k=5)] == [r.id for r in faiss_rec.similar(item_id, k=5)]
