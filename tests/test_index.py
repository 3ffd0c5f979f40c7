"""fashionrec.index: an index is opened once (database, manifest, head, store), checked, and closed once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fashionrec import manifest as manifests
from fashionrec.catalog_db import CatalogDB
from fashionrec.errors import FashionrecError, IndexFormatError
from fashionrec.index import Index
from fashionrec.stores.faiss_store import FaissStore


def test_open_holds_every_part_and_close_releases_the_database(live_index: Path) -> None:
    with Index.open(live_index) as index:
        db = index.db
        assert index.manifest == manifests.read(db)
        assert index.head is None and isinstance(index.store, FaissStore)
        assert len(index) == db.count(embedded=True) == 20
        assert index.columns == db.columns and "articleType" in index.columns
        assert index.store.model == index.manifest  # published without a head: the database's own manifest
        some = index.store.ids[:3]
        assert index.store.stored_metadata(some) == {i: db.get(i).metadata for i in some}  # type: ignore[union-attr]
    with pytest.raises(sqlite3.ProgrammingError):
        db.count()


def test_a_folder_without_an_index_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IndexFormatError, match="run `fashionrec index`"):
        Index.open(tmp_path)


def test_an_index_whose_run_never_finished_is_refused(tmp_path: Path) -> None:
    CatalogDB(tmp_path, create=True).close()
    with pytest.raises(IndexFormatError, match="incomplete"):
        Index.open(tmp_path)


def test_a_store_published_from_another_index_is_refused(live_index: Path, demo_index: Path) -> None:
    other = FaissStore.load(demo_index)  # the demo catalogue, another model and 300 products
    with pytest.raises(FashionrecError, match="does not match"):
        Index.open(live_index, other)
    with Index.open(demo_index, other) as index:  # its own index accepts it
        assert len(index) == len(other.ids)


def test_vectors_from_another_model_are_refused(live_index: Path, demo_index: Path) -> None:
    (live_index / "vectors.faiss").write_bytes((demo_index / "vectors.faiss").read_bytes())
    with pytest.raises(IndexFormatError, match="another model"):
        Index.open(live_index)


def test_open_database_gives_the_database_and_manifest_for_writers(live_index: Path) -> None:
    db, manifest = Index.open_database(live_index)
    try:
        assert manifest.dim == db.vectors(manifest.dim)[1].shape[1]
    finally:
        db.close()
