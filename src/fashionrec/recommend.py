"""The Python API: open an index once, then ask for products similar to a photo or to a product.

    >>> from fashionrec.recommend import Recommender
    >>> rec = Recommender.open("index")
    >>> for r in rec.recommend("photo.jpg", k=5, filters={"gender": ["Women"]}):
    ...     print(r.id, r.score, r.metadata["articleType"])

The model, the vector store and the metadata are loaded once and shared by every call (the API server holds
one Recommender for all requests); nothing about the catalogue is re-read per query.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from fashionrec.catalog_db import CatalogDB, StoredItem
from fashionrec.config import env_default
from fashionrec.errors import FashionrecError, IndexFormatError
from fashionrec.filters import Filters, MetadataColumns, normalise_filters
from fashionrec.head import Head, fingerprint_of, load_head
from fashionrec.hybrid import (
    check_consensus_column,
    check_preferences,
    default_consensus,
    default_weight,
    pool_size,
    rerank,
)
from fashionrec.imageio import load_image
from fashionrec.localise import default_localise, localise
from fashionrec.modelspec import ModelSpec, same_vectors
from fashionrec.stores.base import Hit, VectorStore
from fashionrec.stores.faiss_store import FaissStore

if TYPE_CHECKING:  # only an annotation here; importing it loads PyTorch
    from fashionrec.embedders import Embedder

ImageSource = str | os.PathLike[str] | bytes | Image.Image
MAX_K = 1000


@dataclass(frozen=True)
class Result:
    """One recommended product."""

    id: str
    score: float
    metadata: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """Flat form used by ``--json`` and the API: id, score, then every metadata column."""
        return {"id": self.id, "score": round(self.score, 6), **self.metadata}


def check_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise FashionrecError(f"k must be between 1 and {MAX_K}, got {k}")
    return k


class Recommender:
    """Model + vector store + catalogue database, opened once."""

    def __init__(
        self, index_dir: Path, db: CatalogDB, store: VectorStore, embedder: Embedder, head: Head | None = None
    ) -> None:
        self.index_dir = index_dir
        self.db = db
        self.store = store
        self.embedder = embedder
        self.head = head
        self.columns = db.columns
        self.hybrid_weight = default_weight()
        self.consensus_weight = default_consensus()
        self.consensus_column = env_default("FASHIONREC_CONSENSUS_COLUMN")
        self.localise = default_localise()  # crop query photos to the garment before embedding them

    @classmethod
    def open(
        cls, index_dir: str | os.PathLike[str] = "index", *, embedder: Embedder | None = None, store: VectorStore | None = None
    ) -> Recommender:
        """Open an index directory. ``store`` replaces the default FAISS file (e.g. a Milvus store)."""
        path = Path(index_dir)
        db = CatalogDB(path)
        try:
            model = json.loads(db.get_setting("model") or "null")
            if model is None:
                raise FashionrecError(f"index in {path} is incomplete (no model recorded); re-run `fashionrec index`")
            if store is None:
                faiss_store = FaissStore.load(path)
                if not same_vectors(faiss_store.model, model):
                    raise IndexFormatError(
                        f"the vectors in {path} come from another model than the database records (a re-index with a "
                        "new model was interrupted?); re-run `fashionrec index` to finish it"
                    )
                faiss_store.meta = MetadataColumns(db.columns, [m.metadata for m in _in_order(db, faiss_store.ids)])
                store = faiss_store
            head = load_head(path, model)
            published = getattr(store, "model", {}).get("head")
            if published != fingerprint_of(head):
                raise IndexFormatError(
                    f"the vectors in {path} were published with another projection head than {path}/head.npz "
                    "(a `fashionrec train` was interrupted?); re-run `fashionrec index` to re-publish them"
                )
            return cls(path, db, store, embedder or ModelSpec.from_dict(model).build(cache_dir=path), head)
        except sqlite3.DatabaseError as exc:  # pages damaged past the header only show when they are read
            db.close()
            raise IndexFormatError(f"{db.path} is damaged ({exc}); rebuild the index with `fashionrec index`") from None
        except BaseException:
            db.close()
            raise

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.store)

    # queries --------------------------------------------------------------------------------------------
    def embed(self, images: Sequence[ImageSource]) -> np.ndarray:
        """Decode and embed query images (path, bytes or PIL image), one row per image, in the searched space."""
        arrays = [self.embedder.preprocess(self.prepare(load_image(img))) for img in images]
        return self.project(self.embedder.embed_arrays(np.stack(arrays)))

    def prepare(self, image: Image.Image) -> Image.Image:
        """A decoded query photo as it is embedded: cropped to the garment when ``localise`` is on."""
        return localise(image) if self.localise else image

    def project(self, features: np.ndarray) -> np.ndarray:
        """Backbone features -> the vectors the store holds (through the trained head, when there is one)."""
        return features if self.head is None else self.head.apply(features)

    def recommend(
        self, image: ImageSource, k: int = 5, filters: Mapping[str, Iterable[str]] | None = None,
        prefer: Mapping[str, str] | None = None, consensus: float | None = None,
    ) -> list[Result]:
        """Top-k catalogue products visually similar to ``image``, restricted by ``filters``; products agreeing
        with the soft preferences ``prefer`` (e.g. ``{"baseColour": "Blue"}``) move up, and with ``consensus``
        (default: ``self.consensus_weight``) those of the kind the nearest products agree on (see
        fashionrec.hybrid)."""
        return self.recommend_vectors(self.embed([image]), k, filters, prefer=prefer, consensus=consensus)[0]

    def recommend_vectors(
        self, vectors: np.ndarray, k: int = 5, filters: Mapping[str, Iterable[str]] | None = None,
        exclude: set[str] | None = None, prefer: Mapping[str, str] | None = None, consensus: float | None = None,
    ) -> list[list[Result]]:
        """Search with precomputed query vectors (used by evaluation and batch queries)."""
        prefer = check_preferences(prefer, self.columns)
        consensus = self.consensus_weight if consensus is None else consensus
        if consensus:
            check_consensus_column(self.consensus_column, self.columns)
        reranked = bool(prefer and self.hybrid_weight) or bool(consensus)
        fetch = min(pool_size(check_k(k)), MAX_K) if reranked else check_k(k)
        hits = self.store.search(vectors, fetch, self._filters(filters), exclude)
        results = [self._results(row) for row in hits]
        if not reranked:
            return results
        return [rerank(row, k, prefer=prefer, weight=self.hybrid_weight, consensus=consensus,
                       column=self.consensus_column) for row in results]

    def similar(
        self, item_id: str, k: int = 5, filters: Mapping[str, Iterable[str]] | None = None,
        prefer: Mapping[str, str] | None = None, consensus: float | None = None,
    ) -> list[Result]:
        """Products similar to a catalogue product, never including the product itself."""
        vector = self.db.vector(item_id)
        if vector is None:
            raise FashionrecError(f"unknown item id {item_id!r}")
        return self.recommend_vectors(self.project(vector[None, :]), k, filters, exclude={item_id}, prefer=prefer,
                                      consensus=consensus)[0]

    def item(self, item_id: str) -> StoredItem | None:
        return self.db.get(item_id)

    def _filters(self, filters: Mapping[str, Iterable[str]] | None) -> Filters:
        return normalise_filters(filters, self.columns)

    def _results(self, hits: list[Hit]) -> list[Result]:
        items = self.db.get_many([h.id for h in hits])
        return [Result(h.id, h.score, items[h.id].metadata) for h in hits if h.id in items]


def _in_order(db: CatalogDB, ids: Sequence[str]) -> list[StoredItem]:
    """Stored items in the vector store's row order; an id missing from SQLite means the two disagree."""
    found = db.get_many(ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise FashionrecError(
            f"index and database disagree ({len(missing)} vectors without a product, e.g. {missing[0]!r}); "
            "re-run `fashionrec index`"
        )
    return [found[i] for i in ids]
