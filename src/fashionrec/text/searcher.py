"""``TextSearcher``: words -> ranked catalogue products, with the same filters and results as photo search.

    >>> from fashionrec.text import TextSearcher
    >>> with TextSearcher.open("index") as searcher:
    ...     for r in searcher.search("red floral summer dress", k=5, filters={"gender": ["Women"]}):
    ...         print(r.id, r.score, r.metadata["productDisplayName"])

The text tower and the vectors are loaded once; a query is one sentence-encoder pass, a few NumPy matrix
products (the alignment heads) and a FAISS search. Calls are serialised by a lock, so one searcher can be shared
by a server's worker threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from fashionrec.catalog_db import CatalogDB, closed_on_failure
from fashionrec.errors import FashionrecError, IndexFormatError
from fashionrec.filters import MetadataColumns, normalise_filters
from fashionrec.index import Index, OpenIndex, faiss_store, in_store_order
from fashionrec.manifest import Manifest
from fashionrec.recommend import Result, check_k
from fashionrec.stores.faiss_store import FaissStore
from fashionrec.text.alignment import TEXT_DIR, Alignment

MAX_QUERY_CHARS = 200
QueryEmbedder = Callable[[list[str]], np.ndarray]


def check_query(query: str) -> str:
    """The query, stripped; empty or over-long queries are user mistakes."""
    text = query.strip()
    if not text:
        raise FashionrecError("the search text is empty")
    if len(text) > MAX_QUERY_CHARS:
        raise FashionrecError(f"the search text is too long ({len(text)} characters, at most {MAX_QUERY_CHARS})")
    return text


class TextSearcher(OpenIndex):
    """An open index (fashionrec.index.Index) whose store holds the vectors text queries search, with the query
    text tower."""

    def __init__(self, index: Index, embed_query: QueryEmbedder, mode: str) -> None:
        super().__init__(index)
        self.mode = mode  # "alignment" or "joint"
        self._embed_query = embed_query
        self._lock = threading.Lock()

    @classmethod
    def open(cls, index_dir: str | os.PathLike[str] = "index") -> TextSearcher:
        """Open an index that has text search: a trained alignment, or a joint CLIP backbone."""
        path = Path(index_dir)
        db, model = Index.open_database(path)
        with closed_on_failure(db):
            from fashionrec.embedders.clip import clip_text_embedder, is_joint

            if is_joint(model):
                store, embed, mode = _joint_store(db, path, model), clip_text_embedder(model), "joint"
            else:
                store, embed, mode = _aligned(path, model)
            store.meta = MetadataColumns(db.columns, [m.metadata for m in in_store_order(db, store.ids)])
            return cls(Index(path, db, model, None, store), embed, mode)


    def embed(self, queries: list[str]) -> np.ndarray:
        """Unit query vectors in the searched space, one row per text."""
        return self._embed_query([check_query(q) for q in queries])

    def search(self, query: str, k: int = 5, filters: Mapping[str, Iterable[str]] | None = None) -> list[Result]:
        """Top-k products matching ``query``, restricted by ``filters`` (applied inside the vector search)."""
        parsed = normalise_filters(filters, self.columns)
        check_k(k)
        with self._lock:
            hits = self.store.search(self.embed([query]), k, parsed)[0]
            items = self.db.get_many([h.id for h in hits])
        return [Result(h.id, h.score, items[h.id].metadata) for h in hits if h.id in items]


def _joint_store(db: CatalogDB, path: Path, model: Manifest) -> FaissStore:
    """The CLIP image vectors text queries are compared with: the index's FAISS file, unless a trained projection
    head was applied when it was published (its vectors then left CLIP's space): then the raw CLIP vectors that
    SQLite keeps, indexed in memory."""
    store = FaissStore.load(path)
    if store.model is not None and store.model.head is None:  # brought up to the database's latest writes
        return store if store.generation == db.generation else faiss_store(db, path, model)
    ids, vectors = db.vectors(model.dim)
    return FaissStore.of(ids, vectors, model)


def _aligned(path: Path, model: Manifest) -> tuple[FaissStore, QueryEmbedder, str]:
    """The trained alignment's search index and query embedder, checked against the index's image model."""
    alignment = Alignment.load(path)
    if not model.same_model(alignment.image_model):
        raise IndexFormatError(
            f"the text alignment in {path} was trained on another image model than the index holds; "
            "re-run `fashionrec train-text`"
        )
    store = FaissStore.load(path / TEXT_DIR)
    if store.model is None or store.model.text_alignment != alignment.checksum:
        raise IndexFormatError(f"the text search vectors in {path} do not match its alignment; re-run `fashionrec train-text`")
    from fashionrec.text.encoder import MiniLMEncoder

    encoder = MiniLMEncoder()
    return store, lambda texts: alignment.project("text", encoder.encode(texts)), "alignment"
