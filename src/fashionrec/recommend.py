"""The Python API: open an index once, then ask for products similar to a photo or to a product.

    >>> from fashionrec.recommend import Recommender
    >>> rec = Recommender.open("index")
    >>> for r in rec.recommend("photo.jpg", k=5, filters={"gender": ["Women"]}):
    ...     print(r.id, r.score, r.metadata["articleType"])

The model, the vector store and the metadata are loaded once and shared by every call (the API server holds
one Recommender for all requests); nothing about the catalogue is re-read per query.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from fashionrec.catalog_db import CatalogDB, OpenIndex, StoredItem, closed_on_failure, recorded_model
from fashionrec.errors import FashionrecError, IndexFormatError
from fashionrec.feedback import (
    Box,
    Examples,
    UnknownExampleError,
    check_examples,
    check_method,
    contrast_scores,
    crop,
    rocchio,
)
from fashionrec.filters import Filters, MetadataColumns, normalise_filters
from fashionrec.head import Head, fingerprint_of, load_head
from fashionrec.hybrid import (
    check_consensus_column,
    check_preferences,
    pool_size,
    rerank,
)
from fashionrec.imageio import load_image
from fashionrec.localise import localise
from fashionrec.modelspec import ModelSpec, same_vectors
from fashionrec.ranking import RankingConfig
from fashionrec.result import Result
from fashionrec.stores.base import Hit, VectorStore
from fashionrec.stores.faiss_store import FaissStore

if TYPE_CHECKING:  # only an annotation here; importing it loads PyTorch
    from fashionrec.embedders import Embedder

ImageSource = str | os.PathLike[str] | bytes | Image.Image
MAX_K = 1000


def check_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise FashionrecError(f"k must be between 1 and {MAX_K}, got {k}")
    return k


class Recommender(OpenIndex):
    """Model + vector store + catalogue database, opened once."""

    def __init__(
        self, index_dir: Path, db: CatalogDB, store: VectorStore, embedder: Embedder, head: Head | None = None,
        ranking: RankingConfig | None = None,
    ) -> None:
        self.index_dir = index_dir
        self.db = db
        self.store: VectorStore = store
        self.embedder = embedder
        self.head = head
        self.columns = db.columns
        ranking = ranking or RankingConfig()  # the built-in defaults: the environment is read at the edge
        self.hybrid_weight = ranking.hybrid_weight
        self.consensus_weight = ranking.consensus_weight
        self.consensus_column = ranking.consensus_column
        self.localise = ranking.localise  # crop query photos to the garment before embedding them
        self.feedback_method = ranking.feedback_method  # how liked / disliked products steer a query
        self._column_values: dict[str, set[str]] = {}

    @classmethod
    def open(
        cls, index_dir: str | os.PathLike[str] = "index", *, embedder: Embedder | None = None,
        store: VectorStore | None = None, ranking: RankingConfig | None = None,
    ) -> Recommender:
        """Open an index directory. ``store`` replaces the default FAISS file (e.g. a Milvus store); ``ranking``
        the built-in ranking options (:class:`~fashionrec.ranking.RankingConfig`)."""
        path = Path(index_dir)
        db = CatalogDB(path)
        with closed_on_failure(db):
            model = recorded_model(db)
            if store is None:
                faiss_store = FaissStore.load(path)
                if faiss_store.generation != db.generation and same_vectors(faiss_store.model, model):
                    # the database moved on after the file was written (a write of the items API cut short
                    # between its commit and the file): the searched vectors come from the database, the truth
                    from fashionrec.indexing import build_store

                    faiss_store = build_store(db, path, model, faiss_store.kind)  # type: ignore[arg-type]
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
            return cls(path, db, store, embedder or ModelSpec.from_dict(model).build(cache_dir=path), head, ranking)


    # queries --------------------------------------------------------------------------------------------
    def embed(self, images: Sequence[ImageSource], box: str | Box | None = None) -> np.ndarray:
        """Decode and embed query images (path, bytes or PIL image), one row per image, in the searched space;
        only the region ``box`` of each when given (see :func:`prepare`)."""
        arrays = [self.embedder.preprocess(self.prepare(load_image(img), box)) for img in images]
        return self.project(self.embedder.embed_arrays(np.stack(arrays)))

    def prepare(self, image: Image.Image, box: str | Box | None = None) -> Image.Image:
        """A decoded query photo as it is embedded: the region ``box`` (``x, y, w, h`` in pixels, or fractions
        when all are at most 1; fashionrec.feedback.box_pixels) when given, else cropped to the garment when
        ``localise`` is on."""
        if box is not None:
            return crop(image, box)
        return localise(image) if self.localise else image

    def project(self, features: np.ndarray) -> np.ndarray:
        """Backbone features -> the vectors the store holds (through the trained head, when there is one)."""
        return features if self.head is None else self.head.apply(features)

    def recommend(
        self, image: ImageSource, k: int = 5, filters: Mapping[str, Iterable[str]] | None = None,
        prefer: Mapping[str, str] | None = None, consensus: float | None = None, *, box: str | Box | None = None,
        like: Iterable[str] = (), unlike: Iterable[str] = (), differ: str | None = None,
    ) -> list[Result]:
        """Top-k catalogue products visually similar to ``image``, restricted by ``filters``; products agreeing
        with the soft preferences ``prefer`` (e.g. ``{"baseColour": "Blue"}``) move up, and with ``consensus``
        (default: ``self.consensus_weight``) those of the kind the nearest products agree on (see
        fashionrec.hybrid).

        The shopper can steer it (fashionrec.feedback): ``box`` embeds only that region of the photo; ``like`` /
        ``unlike`` (product ids) move the answer toward / away from those products, which never come back
        themselves; ``differ`` (a column) keeps only products whose value there differs from every liked one's."""
        examples = check_examples(like, unlike)
        self.example_vectors(examples)  # unknown ids fail before the photo is embedded
        return self.steer(self.embed([image], box)[0], k, filters, examples, differ=differ,
                          reference=examples.like, prefer=prefer, consensus=consensus)

    def recommend_examples(
        self, like: Iterable[str], unlike: Iterable[str] = (), k: int = 5,
        filters: Mapping[str, Iterable[str]] | None = None, prefer: Mapping[str, str] | None = None,
        consensus: float | None = None, differ: str | None = None,
    ) -> list[Result]:
        """A query made of examples alone: products like the ``like`` products and unlike the ``unlike`` ones
        (at least one liked product). One liked product alone asks what ``similar`` asks for it."""
        examples = check_examples(like, unlike)
        if not examples.like:
            raise FashionrecError("like must name at least one product when there is no photo or product to start from")
        return self.steer(None, k, filters, examples, differ=differ, reference=examples.like, prefer=prefer,
                          consensus=consensus)

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
        prefer: Mapping[str, str] | None = None, consensus: float | None = None, *,
        like: Iterable[str] = (), unlike: Iterable[str] = (), differ: str | None = None,
    ) -> list[Result]:
        """Products similar to a catalogue product, never including the product itself; ``like`` / ``unlike``
        steer it as in :meth:`recommend`, and ``differ`` (a column, e.g. ``"baseColour"``) asks for the most
        similar products whose value there differs from this product's ("the same style in another colour")."""
        vector = self.db.vector(item_id)
        if vector is None:
            raise FashionrecError(f"unknown item id {item_id!r}")
        examples = check_examples(like, unlike)
        return self.steer(self.project(vector[None, :])[0], k, filters, examples, differ=differ,
                          reference=(item_id,), exclude={item_id}, prefer=prefer, consensus=consensus)

    def steer(
        self, query: np.ndarray | None, k: int, filters: Mapping[str, Iterable[str]] | None, examples: Examples, *,
        differ: str | None = None, reference: Sequence[str] = (), exclude: set[str] | None = None,
        prefer: Mapping[str, str] | None = None, consensus: float | None = None, method: str | None = None,
    ) -> list[Result]:
        """Search from ``query`` (a vector in the searched space; None: the liked products are the query) steered
        by ``examples`` with ``method`` (default ``self.feedback_method``), never returning the examples or
        ``exclude``; ``differ`` drops products sharing the ``reference`` products' value of that column."""
        check_k(k)
        method = check_method(method or self.feedback_method)
        chosen = self._filters(filters)
        if differ is not None:
            chosen = self.differ_filters(chosen, differ, reference)
        exclude = (exclude or set()) | examples.ids
        liked, disliked = self.example_vectors(examples)
        if not examples:
            assert query is not None
            return self.recommend_vectors(query[None, :], k, chosen, exclude, prefer=prefer, consensus=consensus)[0]
        if method == "rocchio":
            moved = rocchio(query, liked, disliked)
            return self.recommend_vectors(moved[None, :], k, chosen, exclude, prefer=prefer, consensus=consensus)[0]
        positives = liked if query is None else np.vstack([query[None, :], liked])
        return self._contrast(positives, disliked, k, chosen, exclude, prefer, consensus)

    def differ_filters(self, filters: Filters, column: str, reference: Sequence[str]) -> Filters:
        """``filters`` narrowed to products whose ``column`` has a value, and none of the ``reference`` products'
        values: an ordinary (inclusion) filter, so it acts inside the vector search."""
        if column not in self.columns:
            raise FashionrecError(f"unknown differ column {column!r}; columns: {', '.join(self.columns)}")
        if not reference:
            raise FashionrecError("differ needs a reference product: a product to start from, or a liked one")
        items = self.db.get_many(list(reference))
        taken = {items[i].metadata.get(column, "") for i in reference if i in items}
        allowed = set(filters.get(column, self.column_values(column))) - taken - {""}
        return {**filters, column: frozenset(allowed)}

    def column_values(self, column: str) -> set[str]:
        """Every value ``column`` takes among the searched products (read once per column)."""
        if column not in self._column_values:
            meta = getattr(self.store, "meta", None)
            if isinstance(meta, MetadataColumns):
                self._column_values[column] = meta.values(column)
            else:
                self._column_values[column] = {i.metadata.get(column, "") for i in self.db.iter_items()}
        return self._column_values[column]

    def example_vectors(self, examples: Examples) -> tuple[np.ndarray, np.ndarray]:
        """The liked and the disliked products' vectors in the searched space (unit rows)."""
        return self._vectors(examples.like, "like"), self._vectors(examples.unlike, "unlike")

    def _vectors(self, ids: Sequence[str], argument: str) -> np.ndarray:
        rows = []
        for item_id in ids:
            vector = self.db.vector(item_id)
            if vector is None:
                raise UnknownExampleError(f"{argument}: unknown product id {item_id!r}")
            rows.append(vector)
        if not rows:
            return np.zeros((0, self.store.dim), dtype=np.float32)
        vectors = self.project(np.stack(rows))
        return (vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def _candidate_vectors(self, ids: Sequence[str]) -> np.ndarray:
        """Searched products' vectors: straight from the FAISS index when it holds them, else from the database."""
        if isinstance(self.store, FaissStore):
            positions = [self.store.position(i) for i in ids]
            if all(p is not None for p in positions):
                try:
                    return self.store.index.reconstruct_batch(np.asarray(positions, dtype=np.int64))
                except RuntimeError:  # an index kind that cannot give its vectors back
                    pass
        return self._vectors(ids, "candidate")

    def _contrast(
        self, positives: np.ndarray, negatives: np.ndarray, k: int, filters: Filters, exclude: set[str],
        prefer: Mapping[str, str] | None, consensus: float | None,
    ) -> list[Result]:
        """Candidates near each positive, ranked by best positive minus weighted best negative similarity."""
        prefer = check_preferences(prefer, self.columns)
        consensus = self.consensus_weight if consensus is None else consensus
        if consensus:
            check_consensus_column(self.consensus_column, self.columns)
        fetch = min(pool_size(k), MAX_K)
        ids = list(dict.fromkeys(h.id for row in self.store.search(positives, fetch, filters, exclude) for h in row))
        if not ids:
            return []
        scores = contrast_scores(self._candidate_vectors(ids), positives, negatives)
        reranked = bool(prefer and self.hybrid_weight) or bool(consensus)
        order = np.argsort(-scores, kind="stable")[: None if reranked else k]
        items = self.metadata([ids[n] for n in order])
        ranked = [Result(ids[n], float(scores[n]), items[ids[n]]) for n in order if ids[n] in items]
        if not reranked:
            return ranked
        return rerank(ranked, k, prefer=prefer, weight=self.hybrid_weight, consensus=consensus,
                      column=self.consensus_column)

    def forget_cached_values(self) -> None:
        """Products changed (fashionrec.live): values read once per column are read again when next needed."""
        self._column_values.clear()

    def item(self, item_id: str) -> StoredItem | None:
        return self.db.get(item_id)

    def _filters(self, filters: Mapping[str, Iterable[str]] | None) -> Filters:
        return normalise_filters(filters, self.columns)

    def _results(self, hits: list[Hit]) -> list[Result]:
        items = self.metadata([h.id for h in hits])
        return [Result(h.id, h.score, items[h.id], h.photo) for h in hits if h.id in items]

    def metadata(self, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Searched products' metadata: from the FAISS store's own copy when it has one (so a server answering
        from this generation while a re-index changes the database still answers with this generation's
        products), else from the database."""
        meta = getattr(self.store, "meta", None)
        if not isinstance(self.store, FaissStore) or not isinstance(meta, MetadataColumns):
            return {i: item.metadata for i, item in self.db.get_many(ids).items()}
        out: dict[str, dict[str, str]] = {}
        missing = []
        for item_id in ids:
            position = self.store.position(item_id)
            if position is None:
                missing.append(item_id)
            else:
                out[item_id] = meta.row(position)
        if missing:
            out.update({i: item.metadata for i, item in self.db.get_many(missing).items()})
        return out


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
