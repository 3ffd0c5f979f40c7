"""An open index: its catalogue database, manifest, projection head and vector store, opened once, closed once.

Everything that reads an index (the recommender, text search, training, evaluation) opens it here, so the checks
that keep queries honest live in one place: the database's schema, the manifest's version, a head trained for
these features, and a vector store published from this database with this model and head.

    >>> from fashionrec.index import Index
    >>> with Index.open("index") as index:
    ...     print(index.manifest.name, len(index), index.columns)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from fashionrec import manifest as manifests
from fashionrec.catalog_db import CatalogDB, StoredItem, closed_on_failure
from fashionrec.columns import ColumnRoles, read_roles
from fashionrec.errors import FashionrecError, IndexFormatError
from fashionrec.filters import MetadataColumns
from fashionrec.head import Head, fingerprint_of, load_head
from fashionrec.manifest import Manifest
from fashionrec.publish import build_store, catch_up, rebuild
from fashionrec.stores.base import VectorStore
from fashionrec.stores.faiss_store import FaissStore


class _Closable:
    """A context manager that closes once."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Index(_Closable):
    """An index directory opened: ``db`` (SQLite, the truth), ``manifest`` (what made its features), ``head`` (the
    trained projection, or None) and ``store`` (the searched vectors: the FAISS file by default). A context
    manager; ``len`` is the number of searchable products."""

    def __init__(self, path: Path, db: CatalogDB, manifest: Manifest, head: Head | None, store: VectorStore) -> None:
        self.path = path
        self.db = db
        self.manifest = manifest
        self.head = head
        self.store = store
        self.roles: ColumnRoles = read_roles(db)  # what the columns mean (fashionrec.columns), read once

    @classmethod
    def open(cls, index_dir: str | os.PathLike[str] = "index", store: VectorStore | None = None) -> Index:
        """Open an index directory; ``store`` replaces its FAISS file (e.g. a Milvus collection published from it)."""
        path = Path(index_dir)
        db = CatalogDB(path)
        with closed_on_failure(db):
            manifest = manifests.read(db, f"index in {path}")
            head = load_head(path, manifest)
            if store is None:
                store = faiss_store(db, path, manifest)
            else:
                stale = store.generation != db.generation and manifest.same_model(store.model)
                # an acknowledged write the store missed (a process killed between the database and the store)
                if stale and not catch_up(store, db, path, manifest):
                    rebuild(store, db, path, manifest)
                check_published(store, db, path, manifest)
            if store.model is None or store.model.head != fingerprint_of(head):
                raise IndexFormatError(
                    f"the vectors in {path} were published with another projection head than {path}/head.npz "
                    "(a `fashionrec train` was interrupted?); re-run `fashionrec index` to re-publish them"
                )
            return cls(path, db, manifest, head, store)

    @classmethod
    def open_database(cls, index_dir: str | os.PathLike[str] = "index") -> tuple[CatalogDB, Manifest]:
        """The database and manifest of an index alone, for work that writes the index (training) or publishes
        its own vectors (text search); the caller closes the database."""
        path = Path(index_dir)
        db = CatalogDB(path)
        with closed_on_failure(db):
            return db, manifests.read(db, f"index in {path}")

    @property
    def columns(self) -> list[str]:
        """Metadata column names, in catalogue order."""
        return self.db.columns


    @property
    def index_dir(self) -> Path:
        return self.path

    def close(self) -> None:
        self.db.close()

    def __len__(self) -> int:
        return len(self.store)


class OpenIndex(_Closable):
    """Base of what answers queries over an open :class:`Index` (the recommender, text search): it reads the
    index's parts through ``index`` and closes it once."""

    def __init__(self, index: Index) -> None:
        self.index = index

    @property
    def path(self) -> Path:
        return self.index.path

    @property
    def index_dir(self) -> Path:
        return self.index.path

    @property
    def db(self) -> CatalogDB:
        return self.index.db

    @property
    def manifest(self) -> Manifest:
        return self.index.manifest

    @property
    def head(self) -> Head | None:
        return self.index.head

    @property
    def store(self) -> VectorStore:
        return self.index.store

    @property
    def columns(self) -> list[str]:
        return self.index.columns

    @property
    def roles(self) -> ColumnRoles:
        return self.index.roles

    def close(self) -> None:
        self.index.close()

    def __len__(self) -> int:
        return len(self.index)


def faiss_store(db: CatalogDB, path: Path, model: Manifest) -> FaissStore:
    """The index's FAISS file with its metadata columns, brought up to the database: the products written one at a
    time since the file was saved (the items API saves it only when it merges its writes, and a process can be
    killed before) are applied again from the database's change log; when something else moved the generation,
    the store is built again from the database (the truth)."""
    store = FaissStore.load(path)
    if not model.same_model(store.model):
        raise IndexFormatError(
            f"the vectors in {path} come from another model than the database records (a re-index with a "
            "new model was interrupted?); re-run `fashionrec index` to finish it"
        )
    if store.generation != db.generation:
        changed = db.changes_since(store.generation)
        if changed is None:
            store = build_store(db, path, model, store.kind)  # type: ignore[arg-type]
        else:  # the file's own products first (those changed since are applied below, not looked up)
            live_rows = [i for i in store.ids]
            gone = set(changed)
            found = db.get_many([i for i in dict.fromkeys(live_rows) if i not in gone])
            store.meta = MetadataColumns(db.columns, [found[i].metadata if i in found else {} for i in live_rows])
            for item_id in {i for i in live_rows if i not in found and i not in gone}:  # the database is the truth
                store.remove(item_id)
            store.checkpoint_dir = path
            catch_up(store, db, path, model)
            if len(changed) >= store.merge_rows:
                store.merge()  # saved merged, so that the next process opening the index does not replay them again
            return store
    store.meta = MetadataColumns(db.columns, [m.metadata for m in in_store_order(db, store.ids)])
    store.checkpoint_dir = path
    return store


def check_published(store: VectorStore, db: CatalogDB, path: Path, model: Manifest) -> None:
    """Refuse a store that was not published from this database (another model, or another set of products)."""
    embedded = db.count(embedded=True)
    if not model.same_model(store.model) or len(store) != embedded:
        raise FashionrecError(
            f"the vector store does not match {path} ({len(store)} products vs {embedded}, or another model); "
            f"publish it again from this index (`fashionrec index` with the same store)"
        )


def in_store_order(db: CatalogDB, ids: Sequence[str]) -> list[StoredItem]:
    """Stored items in the vector store's row order; an id missing from SQLite means the two disagree."""
    found = db.get_many(ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise FashionrecError(
            f"index and database disagree ({len(missing)} vectors without a product, e.g. {missing[0]!r}); "
            "re-run `fashionrec index`"
        )
    return [found[i] for i in ids]
