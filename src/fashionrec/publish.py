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
from typing import TYPE_CHECKING, Protocol

import numpy as np
from tqdm import tqdm

from fashionrec.catalog_db import CatalogDB
from fashionrec.errors import FashionrecError
from fashionrec.filters import MetadataColumns
from fashionrec.head import Head, load_head, project
from fashionrec.manifest import Manifest
from fashionrec.stores.base import VectorStore
from fashionrec.stores.budget import Budget, build_within_budget
from fashionrec.stores.faiss_store import FaissStore, IndexKind

if TYPE_CHECKING:
    from fashionrec.stores.milvus_store import MilvusStore

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
    db.forget_changes(store.generation)
    logger.info("published %d products to %s (%s)", len(store), index_dir, store.kind)
    return store


class FaissPublisher:
    """The default publisher: the FAISS file beside the database (``kind``, within ``budget``)."""

    def __init__(self, kind: IndexKind = "auto", budget: Budget | None = None) -> None:
        self.kind = kind
        self.budget = budget

    def __call__(self, db: CatalogDB, index_dir: Path, model: Manifest) -> str:
        return publish_faiss(db, index_dir, model, self.kind, self.budget).kind


# bringing an open store up to the database (the items API, a restart after a cut-short write) ----------------
def apply_product(store: VectorStore, db: CatalogDB, head: Head | None, item_id: str, generation: int) -> None:
    """Make ``store`` hold product ``item_id`` as the database has it now (every photo, its metadata), or not at
    all when the database no longer has it."""
    item, raw = db.get(item_id), db.product_vectors(item_id)
    if item is None or raw is None:
        store.remove(item_id, generation=generation)
    else:
        store.upsert(item_id, project(raw, head), item.metadata, generation=generation)


def catch_up(store: VectorStore, db: CatalogDB, index_dir: Path, model: Manifest) -> bool:
    """Bring ``store`` from its generation to the database's by applying again each product changed one at a time
    since (the database's change log), with no rebuild; False, and nothing done, when something else moved the
    generation meanwhile (a publication): the store must then be published again (:func:`rebuild`)."""
    target = db.generation
    if store.generation == target:
        return True
    changed = db.changes_since(store.generation)
    if changed is None:
        return False
    head = load_head(index_dir, model)
    for item_id in changed:
        apply_product(store, db, head, item_id, target)
    store.generation = target
    return True


def rebuild(store: VectorStore, db: CatalogDB, index_dir: Path, model: Manifest) -> None:
    """Make an open ``store`` hold every embedded product of ``db`` again (its change log does not cover the gap):
    the FAISS store is built again in memory (its kind kept) and takes the new index's place; a Milvus collection
    gets the rows whose digest changed."""
    if isinstance(store, FaissStore):
        fresh = build_store(db, index_dir, model, store.kind)  # type: ignore[arg-type]
        found = db.get_many(fresh.ids)
        fresh.meta = MetadataColumns(db.columns, [found[i].metadata for i in fresh.ids])
        store.adopt(fresh)
    else:
        from fashionrec.stores.milvus_store import MilvusStore

        if not isinstance(store, MilvusStore):
            raise TypeError(f"no way to publish into {type(store).__name__}")
        publish_into_milvus(db, store, model, head=load_head(index_dir, model))


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
    client = milvus.connect(uri, token, create=True)
    store, recreated = milvus.MilvusStore.open_or_create(client, collection, published_model.dim, db.columns,
                                                         published_model)
    return publish_into_milvus(db, store, model, head=head, progress=progress, recreated=recreated)


def publish_into_milvus(
    db: CatalogDB, store: MilvusStore, model: Manifest, *, head: Head | None = None, progress: bool = False,
    recreated: bool = False,
) -> PublishCounts:
    """Make an open collection hold every embedded product of ``db`` (one row per photo), upserting the rows whose
    digest changed and deleting those the database no longer has; it then records the database's generation."""
    from fashionrec.stores import milvus_store as milvus

    generation = db.generation
    published_model = published_manifest(model, head)
    key = milvus.model_key(published_model)
    wanted = {item_id: milvus.row_digest(digest, meta, key) for item_id, digest, meta in db.embedded_digests()}
    products = dict(wanted)
    photo_rows: dict[str, tuple[str, int]] = {}  # key -> (product, photo number)
    for item_id, n, digest in db.photo_digests():
        row = milvus.photo_key(item_id, n)
        photo_rows[row] = (item_id, n)
        wanted[row] = milvus.row_digest(digest, products[item_id], key) if item_id in products else ""
    published = store.published_digests()
    changed = sorted(i for i, d in wanted.items() if published.get(i) != d)
    gone = sorted(set(published) - set(wanted))
    batch = milvus.PUBLISH_BATCH
    with tqdm(total=len(changed), desc="publishing", unit="row", disable=not progress or not changed) as bar:
        for start in range(0, len(changed), batch):
            keys = changed[start : start + batch]
            owners = [photo_rows.get(k, (k, 0)) for k in keys]
            items = db.get_many(list(dict.fromkeys(i for i, _ in owners)))
            vectors = project(np.stack([_photo_vector(db, i, n) for i, n in owners]), head)
            store.upsert_rows(keys, vectors, [items[i].metadata for i, _ in owners], [wanted[k] for k in keys],
                              [n for _, n in owners])
            bar.update(len(keys))
    for start in range(0, len(gone), batch):
        store.delete(gone[start : start + batch])
    store.record_model(published_model)
    store.flush()
    store.generation = generation
    return PublishCounts(upserted=len(changed), deleted=len(gone), unchanged=len(wanted) - len(changed),
                         recreated=recreated)


def _photo_vector(db: CatalogDB, item_id: str, n: int) -> np.ndarray:
    vectors = db.product_vectors(item_id)
    if vectors is None or n >= len(vectors):
        raise FashionrecError(f"item {item_id!r} has no embedding of photo {n} yet; run `fashionrec index`")
    return vectors[n]


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
