"""Publishing: making a vector store match an index's database, one publisher per kind of store.

SQLite is the truth (raw backbone features and metadata); what is *searched* is derived from it: the FAISS file
beside the database, or a Milvus collection. ``fashionrec index``, ``fashionrec train`` and the items API write the
database, then call a :class:`Publisher`; a publisher projects the raw features through the index's trained head
(when there is one) and records the resulting :class:`~fashionrec.manifest.Manifest` with the vectors, so an
opened index can tell vectors made by another model or head apart.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from fashionrec.catalog_db import CatalogDB
from fashionrec.head import Head, load_head, project
from fashionrec.manifest import Manifest
from fashionrec.stores.budget import Budget, build_within_budget
from fashionrec.stores.faiss_store import FaissStore, IndexKind

logger = logging.getLogger(__name__)

BUDGET_SETTING = "index_budget"


class Publisher(Protocol):
    """Makes one vector store hold every embedded product of ``db`` (manifest ``model``, head in ``index_dir``)."""

    def __call__(self, db: CatalogDB, index_dir: Path, model: Manifest) -> str:
        """Publish; what was published, in a word (the FAISS kind chosen, or "external")."""
        ...


def published_manifest(model: Manifest, head: Head | None) -> Manifest:
    """The manifest of ``model``'s features once published through ``head`` (None: as they are)."""
    return model if head is None else model.through_head(head.fingerprint, head.dim)


def stored_budget(db: CatalogDB) -> Budget | None:
    """The memory and recall budget given to the last ``index`` run that gave one."""
    text = db.get_setting(BUDGET_SETTING)
    return Budget.from_dict(json.loads(text)) if text else None


def store_budget(db: CatalogDB, budget: Budget) -> None:
    db.set_setting(BUDGET_SETTING, json.dumps(budget.to_dict()))


# FAISS --------------------------------------------------------------------------------------------------------
def build_store(db: CatalogDB, index_dir: Path, model: Manifest, kind: IndexKind,
                budget: Budget | None = None) -> FaissStore:
    """The FAISS store of every embedding in SQLite (through the head in ``index_dir``), in memory, stamped with
    the database's generation; its build record holds the kind chosen, the search parameters and the recall@10
    measured on a sample (fashionrec.stores.budget)."""
    ids, vectors = db.vectors(model.dim)
    photos = None
    extra_ids, numbers, extra = db.photo_vectors(model.dim)
    if extra_ids:  # products with several photos (items API): one row per photo
        ids, vectors, photos = ids + extra_ids, np.vstack([vectors, extra]), [0] * len(ids) + numbers
    head = load_head(index_dir, model)
    vectors = project(vectors, head)
    strict = budget is not None  # a budget stored by an earlier run never fails a rebuild (items API, training)
    index, resolved, record = build_within_budget(vectors, kind, budget if strict else stored_budget(db), strict=strict)
    return FaissStore(index=index, ids=ids, kind=resolved, model=published_manifest(model, head),
                      generation=db.generation, photos=photos, build=record)


def publish_faiss(db: CatalogDB, index_dir: Path, model: Manifest, kind: IndexKind,
                  budget: Budget | None = None) -> FaissStore:
    """Rebuild the FAISS file from every embedding in SQLite and write it atomically, as a new generation.

    With a trained head in ``index_dir`` the file holds head-space vectors and its manifest names the head
    (SQLite keeps the raw backbone features, so a new head never re-embeds an image). ``budget`` (default: the
    one the last ``index`` run stored) chooses the kind and tunes its search parameter."""
    db.new_generation()
    store = build_store(db, index_dir, model, kind, budget)
    store.save(index_dir)
    logger.info("published %d vectors to %s (%s)", len(store.ids), index_dir, store.kind)
    return store


class FaissPublisher:
    """The default publisher: the FAISS file beside the database (``kind``, within ``budget``)."""

    def __init__(self, kind: IndexKind = "auto", budget: Budget | None = None) -> None:
        self.kind = kind
        self.budget = budget

    def __call__(self, db: CatalogDB, index_dir: Path, model: Manifest) -> str:
        return publish_faiss(db, index_dir, model, self.kind, self.budget).kind


# Milvus -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PublishCounts:
    """What a publication changed in a Milvus collection."""

    upserted: int
    deleted: int
    unchanged: int
    recreated: bool

    def summary(self) -> str:
        verb = "created" if self.recreated else "updated"
        return f"milvus collection {verb}: {self.upserted} upserted, {self.deleted} deleted, {self.unchanged} unchanged"


def publish_to_milvus(
    db: CatalogDB, uri: str, model: Manifest, *, collection: str | None = None, token: str = "",
    progress: bool = False, head: Head | None = None,
) -> PublishCounts:
    """Make the collection match SQLite's embedded items, touching only the rows whose digest changed.

    With a trained ``head`` the rows hold head-space vectors and the recorded manifest names the head, so a new
    head changes every row's digest and re-publishes all of them. A collection whose dimension or columns no
    longer fit is dropped and created again."""
    from fashionrec.stores import milvus_store as milvus

    collection = collection or milvus.DEFAULT_COLLECTION
    published_model = published_manifest(model, head)
    columns = db.columns
    client = milvus.connect(uri, token, create=True)
    store, recreated = milvus.MilvusStore.open_or_create(client, collection, published_model.dim, columns,
                                                         published_model)
    key = milvus.model_key(published_model)
    wanted = {item_id: milvus.row_digest(digest, meta, key) for item_id, digest, meta in db.embedded_digests()}
    published = store.published_digests()
    changed = sorted(i for i, d in wanted.items() if published.get(i) != d)
    gone = sorted(set(published) - set(wanted))
    batch = milvus.PUBLISH_BATCH
    with tqdm(total=len(changed), desc="publishing", unit="row", disable=not progress or not changed) as bar:
        for start in range(0, len(changed), batch):
            ids = changed[start : start + batch]
            items = db.get_many(ids)
            vectors = project(db.stacked_vectors(ids), head)
            store.upsert(ids, vectors, [items[i].metadata for i in ids], [wanted[i] for i in ids])
            bar.update(len(ids))
    for start in range(0, len(gone), batch):
        store.delete(gone[start : start + batch])
    store.record_model(published_model)
    store.flush()
    return PublishCounts(upserted=len(changed), deleted=len(gone), unchanged=len(wanted) - len(changed),
                         recreated=recreated)


class MilvusPublisher:
    """Publishes into a Milvus collection (a server URL, or a Milvus Lite ``.db`` file); keeps the counts of its
    last run so the CLI can report them next to the indexing summary."""

    def __init__(self, uri: str, collection: str | None = None, *, token: str = "", progress: bool = False) -> None:
        from fashionrec.stores.milvus_store import DEFAULT_COLLECTION, check_uri

        self.uri = check_uri(uri)
        self.collection = collection or DEFAULT_COLLECTION
        self.token = token
        self.progress = progress
        self.counts: PublishCounts | None = None

    def __call__(self, db: CatalogDB, index_dir: Path, model: Manifest) -> str:
        self.counts = publish_to_milvus(db, self.uri, model, collection=self.collection, token=self.token,
                                        progress=self.progress, head=load_head(index_dir, model))
        return "external"  # what `index --json` has always reported as index_kind for a store outside the folder
