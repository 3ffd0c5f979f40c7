"""The Python API: open an index once, then ask for products similar to a photo or to a product.

    >>> from fashionrec.recommend import Recommender
    >>> rec = Recommender.open("index")
    >>> for r in rec.recommend("photo.jpg", k=5, filters={"gender": ["Women"]}):
    ...     print(r.id, r.score, r.metadata["articleType"])

The model, the vector store and the metadata are loaded once and shared by every call (the API server holds
one Recommender for all requests); nothing about the catalogue is re-read per query.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np

from fashionrec.catalog_db import StoredItem
from fashionrec.embedders.protocol import Embedder
from fashionrec.errors import FashionrecError
from fashionrec.feedback import (
    Box,
    Examples,
    UnknownExampleError,
    check_examples,
    check_method,
    contrast_scores,
    rocchio,
)
from fashionrec.filters import Filters, normalise_filters
from fashionrec.garments import GarmentClasses, GarmentLocaliser, crop_box, load_classes
from fashionrec.hybrid import (
    check_consensus_column,
    check_preferences,
    pool_size,
    rerank,
)
from fashionrec.imageio import load_image
from fashionrec.index import Index, OpenIndex
from fashionrec.kinds import OTHER, KindClassifier, Kinds, allot, class_of_values, interleave, kind_classifier_for
from fashionrec.look import CROP_MARGIN, LOCALISER_WEIGHT, MAX_GARMENTS, MIN_AGREEMENT, LookGarment, steered
from fashionrec.modelspec import ModelSpec
from fashionrec.query import ImageSource, QueryEncoder
from fashionrec.ranking import RankingConfig
from fashionrec.result import Result
from fashionrec.stores.base import Hit, VectorStore
from fashionrec.vectors import l2_normalise

__all__ = ["MAX_K", "ImageSource", "LookGarment", "Recommender", "Result", "check_k"]
logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_K = 1000


def check_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise FashionrecError(f"k must be between 1 and {MAX_K}, got {k}")
    return k


def _ranking_option(name: str) -> Any:
    """A Recommender attribute that reads ``ranking.<name>``; setting it replaces the (frozen) config."""

    def get(self: Recommender) -> Any:
        return getattr(self.ranking, name)

    def set_(self: Recommender, value: Any) -> None:
        self.ranking = replace(self.ranking, **{name: value})

    return property(get, set_, doc=f"``ranking.{name}`` (fashionrec.ranking.RankingConfig)")


class Recommender(OpenIndex):
    """An open index (fashionrec.index.Index) with its query encoder and its ranking options: one frozen
    :class:`~fashionrec.ranking.RankingConfig` (``ranking``) that every query reads."""

    hybrid_weight = _ranking_option("hybrid_weight")
    consensus_weight = _ranking_option("consensus_weight")
    consensus_column = _ranking_option("consensus_column")
    feedback_method = _ranking_option("feedback_method")  # how liked / disliked products steer a query
    localise = _ranking_option("localise")  # crop query photos to the garment before embedding them

    def __init__(self, index: Index, embedder: Embedder, ranking: RankingConfig | None = None) -> None:
        super().__init__(index)
        self.embedder = embedder
        self.encoder = QueryEncoder(embedder, index.head)
        self.ranking = ranking or RankingConfig()  # the built-in defaults: the environment is read at the edge
        self._column_values: dict[str, set[str]] = {}
        # networks and files opened on first use, in one dict shared with every pinned() copy: a server's
        # per-request copy opens them once for all, never once per request
        self._opened: dict[str, Any] = {}
        self._opening = threading.RLock()

    def _open_once(self, key: str, opener: Callable[[], T]) -> T:
        if key not in self._opened:
            with self._opening:
                if key not in self._opened:
                    self._opened[key] = opener()
        return self._opened[key]  # type: ignore[no-any-return]

    @property
    def ranking(self) -> RankingConfig:
        return self._ranking

    @ranking.setter
    def ranking(self, value: RankingConfig) -> None:
        self._ranking = value
        self.encoder.localise = value.localise

    @classmethod
    def open(
        cls, index_dir: str | os.PathLike[str] = "index", *, embedder: Embedder | None = None,
        store: VectorStore | None = None, ranking: RankingConfig | None = None,
    ) -> Recommender:
        """Open an index directory. ``store`` replaces the default FAISS file (e.g. a Milvus store); ``ranking``
        the built-in ranking options (:class:`~fashionrec.ranking.RankingConfig`)."""
        return cls.from_index(Index.open(index_dir, store), embedder, ranking)

    @classmethod
    def from_index(
        cls, index: Index, embedder: Embedder | None = None, ranking: RankingConfig | None = None,
    ) -> Recommender:
        """A recommender over an open ``index``, with ``embedder`` (default: the one its manifest records, built
        now); ``index`` is closed if that fails."""
        try:
            embedder = embedder or ModelSpec.from_manifest(index.manifest).build(cache_dir=index.path)
        except BaseException:
            index.close()
            raise
        return cls(index, embedder, ranking)

    @property
    def vote_column(self) -> str:
        """The column the neighbours vote on (``--consensus``): ``consensus_column`` when set, else the index's
        label column (fashionrec.columns); an index without a label cannot vote."""
        if self.consensus_column:
            return str(self.consensus_column)
        if not self.roles.label:
            raise FashionrecError("consensus needs a label column to vote on, and the index records none; name one "
                                  "with consensus_column, or record the index's label (`fashionrec index --label "
                                  "COLUMN`)")
        return self.roles.label

    # queries --------------------------------------------------------------------------------------------
    def embed(self, images: Sequence[ImageSource], box: str | Box | None = None) -> np.ndarray:
        """Decode and embed query images (path, bytes or PIL image), one row per image, in the searched space;
        only the region ``box`` of each when given (fashionrec.query.QueryEncoder)."""
        return self.encoder.encode(images, box)

    def project(self, features: np.ndarray) -> np.ndarray:
        """Backbone features -> the vectors the store holds (through the trained head, when there is one)."""
        return self.encoder.project(features)

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
        vectors, kinds = self.encode_queries(self.encoder.preprocess([self.encoder.prepare(load_image(image), box)]))
        return self.steer_kinds(vectors[0], kinds[0], k, self._filters(filters), examples, differ=differ,
                                reference=examples.like, prefer=prefer, consensus=consensus)

    def steer_kinds(self, query: np.ndarray, kinds: Kinds, k: int, filters: Filters, examples: Examples,
                    **options: Any) -> list[Result]:
        """:meth:`steer`, its k places shared among the garment ``kinds`` in proportion to their probability
        (fashionrec.kinds.allot), each kind searched among its catalogue values (:meth:`kind_filters`; ``other``
        among everything), the products chosen then ordered by score; unsteered when the shopper liked products
        (what they like says what they want better than the photo's kind), or when the catalogue has nothing of
        those kinds under ``filters``."""
        if examples.like or not kinds or not self.ranking.steer_kind:
            return self.steer(query, k, filters, examples, **options)
        lists = []
        for (kind, _), places in zip(kinds, allot([share for _, share in kinds], k), strict=True):
            if places:
                chosen = filters if kind == OTHER else self.kind_filters(filters, (kind,))
                lists.append((places, self.steer(query, k, chosen, examples, **options)))
        picked = interleave(lists, k, key=lambda r: r.id)  # which products: each kind's share of the places
        if not picked:
            return self.steer(query, k, filters, examples, **options)
        return sorted(picked, key=lambda r: -r.score)  # in what order: by score (a product's own photo comes first)

    def encode_queries(self, batch: np.ndarray, exclude: set[str] | None = None) -> tuple[np.ndarray, list[Kinds]]:
        """A preprocessed query batch -> its vectors in the searched space, and the mix of garment kinds each one
        shows (fashionrec.kinds: the kind classifier's view blended with the nearest products' vote, products in
        ``exclude`` not voting; empty: steering off, or no kind classifier reads this model's input)."""
        vectors, opinions = self.embed_batch(batch)
        return vectors, self.kinds_of(vectors, opinions, exclude)

    def embed_batch(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The networks' half of :meth:`encode_queries`: a preprocessed batch -> its vectors, and the kind
        classifier's class probabilities (None: steering off, or no classifier reads this model's input)."""
        features = self.encoder.features(batch)
        classifier = self.kind_classifier if self.ranking.steer_kind else None
        opinions = classifier.probabilities(batch) if classifier is not None else None
        return self.project(features), opinions

    def kinds_of(self, vectors: np.ndarray, opinions: np.ndarray | None,
                 exclude: set[str] | None = None) -> list[Kinds]:
        """The catalogue's half of :meth:`encode_queries`: each query's mix of kinds, from the classifier's
        ``opinions`` (:meth:`embed_batch`) and the vote of the query's nearest products (unfiltered, ``exclude``
        left out) for their garment classes; no vote when the catalogue lacks the class file's column."""
        classifier = self.kind_classifier
        if opinions is None or classifier is None:
            return [()] * len(vectors)
        classes = self.garment_classes
        if not classifier.neighbours or classes.column not in self.columns:
            return classifier.mixes(opinions)
        nearest = self.recommend_vectors(vectors, classifier.neighbours, {}, exclude=exclude, consensus=0.0)
        voted = [[class_of_values({str(r.metadata.get(classes.column, ""))}, classes) for r in row] for row in nearest]
        return classifier.mixes(opinions, voted)

    def kind_filters(self, filters: Filters, kinds: Sequence[str]) -> Filters:
        """``filters`` steered to the garment classes ``kinds`` (their catalogue values, garments.json) when kind
        steering is on and the caller does not already filter that column (fashionrec.look.steered)."""
        if not kinds or not self.ranking.steer_kind:
            return filters
        return steered(filters, self.garment_classes, kinds, self.columns)

    @property
    def kind_classifier(self) -> KindClassifier | None:
        """The classifier of garment kinds for this index's model (None: none reads its input), opened on first
        use."""
        return self._open_once("kind classifier", lambda: kind_classifier_for(  # the vote needs worn garments learnt
            self.manifest, worn=self.head is not None and self.head.worn_garments > 0))

    @kind_classifier.setter
    def kind_classifier(self, value: KindClassifier | None) -> None:
        self._opened["kind classifier"] = value

    def look(
        self, image: ImageSource, k: int = 5, filters: Mapping[str, Iterable[str]] | None = None, *,
        max_garments: int = MAX_GARMENTS, steer: bool = True,
    ) -> list[LookGarment]:
        """Shop the look: the garments found in a photo of a whole outfit (most confident first, at most
        ``max_garments``), each with a label, a box ``(x, y, w, h)`` in the photo's pixels, a confidence and its own
        top-k products under ``filters`` (a garment with none is left out). ``steer`` searches each garment among
        its class's catalogue values (``garments.json``) unless ``filters`` already names that column, with the kind
        classifier's second opinion when kind steering is on (fashionrec.look)."""
        check_k(k)
        chosen = self._filters(filters)
        photo = load_image(image)
        garments = self.localiser.find(photo, max_garments=max_garments)
        if not garments:
            return []
        batch = self.encoder.preprocess([crop_box(photo, g.box, CROP_MARGIN) for g in garments])
        vectors = self.project(self.encoder.features(batch))
        classifier = self.kind_classifier if steer and self.ranking.steer_kind else None
        opinions = classifier.probabilities(batch) if classifier is not None else None
        out = []
        for number, (garment, vector) in enumerate(zip(garments, vectors, strict=True)):
            wanted = steered(chosen, self.garment_classes, garment.label, self.columns) if steer else chosen
            results = self.recommend_vectors(vector[None, :], k, wanted)[0]
            if not results:  # a garment the catalogue has nothing of (under the filters) is left out
                continue
            if classifier is not None and opinions is not None and garment.label in classifier.classes:
                row = opinions[number]
                if row[classifier.classes.index(garment.label)] < MIN_AGREEMENT:
                    logger.debug("look: %s left out, the kind classifier disagrees", garment.label)
                    continue
                mix = classifier.mix(classifier.weighted(row, garment.label, LOCALISER_WEIGHT))
                if [name for name, _ in mix] != [garment.label]:  # its own class alone: answered above already
                    results = self.steer_kinds(vector, mix, k, chosen, Examples())
            out.append(LookGarment(garment.label, garment.box, garment.score, results))
        return out

    @property
    def localiser(self) -> GarmentLocaliser:
        """The garment localiser (the shipped one unless one was given), opened on first use."""
        return self._open_once("localiser", lambda: GarmentLocaliser.open(classes=self.garment_classes))

    @localiser.setter
    def localiser(self, value: GarmentLocaliser) -> None:
        self._opened["localiser"] = value

    @property
    def garment_classes(self) -> GarmentClasses:
        """The garment classes looks and kind steering search among (garments.json): the localiser's when one is
        open, else the shipped file's, read on first use (kind steering needs no localiser network)."""
        localiser = self._opened.get("localiser")
        if localiser is not None:
            return localiser.classes  # type: ignore[no-any-return]
        return self._open_once("classes", load_classes)

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
            check_consensus_column(self.vote_column, self.columns)
        reranked = bool(prefer and self.hybrid_weight) or bool(consensus)
        fetch = min(pool_size(check_k(k)), MAX_K) if reranked else check_k(k)
        hits = self.store.search(vectors, fetch, self._filters(filters), exclude)
        results = [self._results(row) for row in hits]
        if not reranked:
            return results
        return [rerank(row, k, prefer=prefer, weight=self.hybrid_weight, consensus=consensus,
                       column=self.vote_column) for row in results]

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
            values = self.store.stored_values(column)
            if values is None:
                values = {i.metadata.get(column, "") for i in self.db.iter_items()}
            self._column_values[column] = values
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
        return l2_normalise(vectors)

    def _candidate_vectors(self, ids: Sequence[str]) -> np.ndarray:
        """Searched products' vectors: from the store when it gives them back, else from the database."""
        vectors = self.store.stored_vectors(ids)
        return self._vectors(ids, "candidate") if vectors is None else vectors

    def _contrast(
        self, positives: np.ndarray, negatives: np.ndarray, k: int, filters: Filters, exclude: set[str],
        prefer: Mapping[str, str] | None, consensus: float | None,
    ) -> list[Result]:
        """Candidates near each positive, ranked by best positive minus weighted best negative similarity."""
        prefer = check_preferences(prefer, self.columns)
        consensus = self.consensus_weight if consensus is None else consensus
        if consensus:
            check_consensus_column(self.vote_column, self.columns)
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
                      column=self.vote_column)

    def forget_cached_values(self) -> None:
        """Products changed (fashionrec.live): values read once per column are read again when next needed."""
        self._column_values.clear()

    def pinned(self) -> Recommender:
        """This recommender reading its vector store as it is now (:meth:`VectorStore.snapshot`): writes landing
        later do not change what it answers, so one request answers from one generation. It shares this one's
        database, model and caches; close this one, not it."""
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.index = Index(self.path, self.db, self.manifest, self.head, self.store.snapshot())
        return copy

    def item(self, item_id: str) -> StoredItem | None:
        return self.db.get(item_id)

    def _filters(self, filters: Mapping[str, Iterable[str]] | None) -> Filters:
        return normalise_filters(filters, self.columns)

    def _results(self, hits: list[Hit]) -> list[Result]:
        items = self.metadata([h.id for h in hits])
        return [Result(h.id, h.score, items[h.id], h.photo) for h in hits if h.id in items]

    def metadata(self, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Searched products' metadata: from the store's own copy when it has one (so a server answering from this
        generation while a re-index changes the database still answers with this generation's products), else
        from the database."""
        out = self.store.stored_metadata(ids)
        missing = [i for i in ids if i not in out]
        if missing:
            out.update({i: item.metadata for i, item in self.db.get_many(missing).items()})
        return out
