"""The server's one Recommender, made safe and cheap to share between FastAPI's worker threads.

The model is loaded once at start-up. Requests run on a thread pool, so two locks serialise what must not run
concurrently: the network (one forward pass at a time; PyTorch already uses every core for one, and running two
at once only makes both slower) and the SQLite connection (one connection shared by all threads). Decoding an
upload needs neither lock, so it overlaps with other requests' inference. Facets and trends are computed when
first asked for after the products changed (the items API changes them: :mod:`fashionrec.live`); a write holds the
database lock, so a query sees the catalogue before the write or after it, never half of it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from fastapi import Request

from fashionrec.api.errors import ApiError
from fashionrec.api.models import (
    FacetOut,
    FacetsOut,
    HealthOut,
    ItemOut,
    QueryImageOut,
    RecommendOut,
    SimilarOut,
    SteeredOut,
    TrendsOut,
    ValueCount,
    item_out,
    results_out,
)
from fashionrec.api.settings import ApiSettings
from fashionrec.api.uploads import decode_upload
from fashionrec import live
from fashionrec.catalog_db import StoredItem
from fashionrec.errors import FashionrecError
from fashionrec.feedback import BoxError, UnknownExampleError, box_pixels, check_examples
from fashionrec.filters import Filters, parse_filters
from fashionrec.hybrid import Preferences, parse_preferences
from fashionrec.recommend import Recommender
from fashionrec.trends import compute_trends, count_values

MAX_FACET_VALUES = 200
"""A column with more distinct values than this (or values that rarely repeat, like product names) is not offered
as a list of filter choices; it can still be used in ``filter=``."""


class RecommenderService:
    """Thread-safe queries over one open :class:`Recommender`, answered as API models."""

    def __init__(self, recommender: Recommender, settings: ApiSettings) -> None:
        self.recommender = recommender
        self.settings = settings
        self._model_lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._facets: FacetsOut | None = None
        self._trends: TrendsOut | None = None

    @property
    def facets(self) -> FacetsOut:
        with self._db_lock:
            if self._facets is None:
                db = self.recommender.db
                counts = count_values((i.metadata for i in db.iter_items()), db.columns)
                self._facets = _facets(db.count(), db.columns, counts)
            return self._facets

    @property
    def trends(self) -> TrendsOut:
        with self._db_lock:
            if self._trends is None:
                self._trends = TrendsOut.model_validate(compute_trends(self.recommender.db))
            return self._trends

    def health(self) -> HealthOut:
        embedder = self.recommender.embedder
        return HealthOut(status="ok", items=len(self.recommender), model=embedder.name, dim=embedder.dim)

    def parse_filters(self, specs: Sequence[str]) -> Filters:
        """``["gender=Women", "articleType=Heels,Flats"]`` -> filters, checked against the index's columns (400)."""
        return parse_filters(specs, self.recommender.columns)

    def parse_preferences(self, specs: Sequence[str]) -> Preferences:
        """``["baseColour=Blue"]`` -> soft preferences (hybrid ranking), checked against the index's columns (400)."""
        return parse_preferences(specs, self.recommender.columns)

    def recommend_upload(
        self, data: bytes, k: int, filters: Filters, prefer: Preferences | None = None, consensus: float | None = None,
        box: str | None = None, like: Sequence[str] = (), unlike: Sequence[str] = (), differ: str | None = None,
    ) -> RecommendOut:
        """Products similar to the photo in ``data`` (blocking: decode and inference), or to its region ``box``,
        steered by liked / disliked products and ``differ`` (fashionrec.feedback)."""
        rec = self.recommender
        with _steering_errors():
            examples = check_examples(like, unlike)
            with self._db_lock:
                rec.example_vectors(examples)  # unknown ids fail before the photo is decoded and embedded
            upload = decode_upload(data, self.settings.max_pixels)
            pixels = box_pixels(box, upload.width, upload.height) if box is not None else None
            image = rec.prepare(upload.image, box)
            batch = rec.embedder.preprocess(image)[None]
            with self._model_lock:
                vectors = rec.project(rec.embedder.embed_arrays(batch))
            with self._db_lock:
                results = rec.steer(vectors[0], k, filters, examples, differ=differ, reference=examples.like,
                                    prefer=prefer, consensus=consensus)
        query = QueryImageOut(format=upload.format, width=upload.width, height=upload.height)
        region = None if pixels is None else [pixels[0], pixels[1], pixels[2] - pixels[0], pixels[3] - pixels[1]]
        return RecommendOut(k=k, filters=_listed(filters), results=results_out(results), query=query, box=region,
                            like=list(examples.like), unlike=list(examples.unlike), differ=differ)

    def similar(
        self, item_id: str, k: int, filters: Filters, prefer: Preferences | None = None, consensus: float | None = None,
        like: Sequence[str] = (), unlike: Sequence[str] = (), differ: str | None = None,
    ) -> SimilarOut:
        """"More like this": products similar to catalogue product ``item_id``, excluding it, steered by liked /
        disliked products and ``differ`` ("the same style, another colour")."""
        with self._db_lock, _steering_errors():
            item = self._item(item_id)
            examples = check_examples(like, unlike)
            results = self.recommender.similar(item_id, k, filters, prefer=prefer, consensus=consensus,
                                               like=examples.like, unlike=examples.unlike, differ=differ)
        return SimilarOut(k=k, filters=_listed(filters), results=results_out(results), item=item_out(item),
                          like=list(examples.like), unlike=list(examples.unlike), differ=differ)

    def examples(
        self, like: Sequence[str], unlike: Sequence[str], k: int, filters: Filters, prefer: Preferences | None = None,
        consensus: float | None = None, differ: str | None = None,
    ) -> SteeredOut:
        """A query made of liked and disliked products alone."""
        with self._db_lock, _steering_errors():
            examples = check_examples(like, unlike)
            results = self.recommender.recommend_examples(examples.like, examples.unlike, k, filters, prefer=prefer,
                                                          consensus=consensus, differ=differ)
        return SteeredOut(k=k, filters=_listed(filters), results=results_out(results), like=list(examples.like),
                          unlike=list(examples.unlike), differ=differ)

    def item(self, item_id: str) -> ItemOut:
        with self._db_lock:
            return item_out(self._item(item_id))

    def image_path(self, item_id: str) -> Path:
        """The stored catalogue photo of ``item_id``: looked up by id, never taken from the client."""
        with self._db_lock:
            path = Path(self._item(item_id).image_path)
        if not path.is_file():
            raise ApiError(404, f"the image of item {item_id!r} is missing from the catalogue folder")
        return path

    # writes (the items API) ----------------------------------------------------------------------------
    def put_item(self, item_id: str, photos: Sequence[bytes], fields: dict[str, str]) -> tuple[ItemOut, bool]:
        """Add or replace product ``item_id`` with its photo and metadata; the product, and whether it is new."""
        rec = self.recommender
        with _write_errors():
            live.check_item_id(item_id)
            live.check_metadata(fields, rec.columns)
            if len(photos) != 1:
                raise ApiError(422, f"send exactly one photo in the multipart field 'file' (got {len(photos)})")
            upload = decode_upload(photos[0], self.settings.max_pixels)
            with self._model_lock:
                photo = live.embed_photo(rec, photos[0], upload.image, max_pixels=self.settings.max_pixels)
            with self._db_lock:
                created = rec.db.get(item_id) is None
                item = live.put_item(rec, item_id, photo, fields)
                self._changed()
        return item_out(item), created

    def patch_item(self, item_id: str, fields: dict[str, str]) -> ItemOut:
        """Change some metadata columns of a product."""
        with _write_errors():
            if not fields:
                raise ApiError(422, "send at least one metadata column as a form field")
            with self._db_lock:
                item = live.patch_item(self.recommender, item_id, fields)
                self._changed()
        return item_out(item)

    def delete_item(self, item_id: str) -> None:
        with _write_errors(), self._db_lock:
            live.delete_item(self.recommender, item_id)
            self._changed()

    def _changed(self) -> None:
        """The products changed (the caller holds the database lock): derived views are recomputed when asked."""
        self._facets = self._trends = None

    def _item(self, item_id: str) -> StoredItem:
        item = self.recommender.item(item_id)
        if item is None:
            raise ApiError(404, f"unknown item id {item_id!r}")
        return item


def get_service(request: Request) -> RecommenderService:
    """FastAPI dependency: the app's service (also for route modules added later, such as text search)."""
    service: RecommenderService = request.app.state.service
    return service


@contextmanager
def _steering_errors() -> Iterator[None]:
    """An unknown liked / disliked product or a box outside the photo is a 422 naming the parameter."""
    try:
        yield
    except UnknownExampleError as exc:
        raise ApiError(422, str(exc)) from None
    except BoxError as exc:
        raise ApiError(422, str(exc)) from None


@contextmanager
def _write_errors() -> Iterator[None]:
    """An unknown product is a 404, a bad id or an unknown column a 422 naming it."""
    try:
        yield
    except live.UnknownItemError as exc:
        raise ApiError(404, str(exc)) from None
    except FashionrecError as exc:
        raise ApiError(422, str(exc)) from None


def _listed(filters: Filters) -> dict[str, list[str]]:
    return {column: sorted(values) for column, values in filters.items()}


def _facets(items: int, columns: Sequence[str], counts: dict[str, Counter[str]]) -> FacetsOut:
    facets, others = [], []
    for column in columns:
        counter = counts[column]
        if 0 < len(counter) <= min(MAX_FACET_VALUES, max(1, items // 2)):
            values = [ValueCount(value=v, count=c) for v, c in counter.most_common()]
            facets.append(FacetOut(column=column, values=values))
        else:
            others.append(column)
    return FacetsOut(items=items, facets=facets, other_columns=others)
