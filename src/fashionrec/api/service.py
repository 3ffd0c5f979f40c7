"""The server's one Recommender, made safe and cheap to share between FastAPI's worker threads.

The model is loaded once at start-up. Requests run on a thread pool, so two locks serialise what must not run
concurrently: the network (one forward pass at a time; PyTorch already uses every core for one, and running two
at once only makes both slower) and the SQLite connection (one connection shared by all threads). Decoding an
upload needs neither lock, so it overlaps with other requests' inference. Facets and trends are computed when
first asked for after the products changed (the items API changes them: :mod:`fashionrec.live`); a write holds the
database lock, so a query sees the catalogue before the write or after it, never half of it.

A new index generation (a re-index, a new head or model, ``fashionrec add`` from another process) is picked up
by :meth:`RecommenderService.reload`, which the refresh thread (:meth:`RecommenderService.start_refresh`) calls when
the database's generation moves past the one the searched vectors were published at, and ``POST /admin/reload``
calls on demand. Each request is pinned to the Recommender that was current when it started and uses only that
one, so it never mixes two generations; the new Recommender is opened beside the old one, then swapped in, and the
old one is closed as soon as its last request is done (so memory does not grow with each swap). The model is
reused when the new generation has the same one.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Request

from fashionrec import live
from fashionrec.api.errors import ApiError
from fashionrec.api.models import (
    ColumnRolesOut,
    FacetOut,
    FacetsOut,
    HealthOut,
    ItemOut,
    LookOut,
    QueryImageOut,
    RecommendOut,
    SimilarOut,
    SteeredOut,
    TrendsOut,
    ValueCount,
    garments_out,
    item_out,
    results_out,
)
from fashionrec.api.settings import ApiSettings
from fashionrec.api.uploads import decode_upload
from fashionrec.catalog_db import CatalogDB, StoredItem
from fashionrec.errors import FashionrecError
from fashionrec.feedback import BoxError, UnknownExampleError, box_pixels, check_examples
from fashionrec.filters import Filters, parse_filters
from fashionrec.hybrid import Preferences, parse_preferences
from fashionrec.index import Index
from fashionrec.look import steered
from fashionrec.recommend import Recommender
from fashionrec.trends import compute_trends, count_values

MAX_FACET_VALUES = 200
"""A column with more distinct values than this (or values that rarely repeat, like product names) is not offered
as a list of filter choices; it can still be used in ``filter=``."""


log = logging.getLogger("fashionrec.api")
F = TypeVar("F", bound=Callable[..., Any])
_REQUEST: ContextVar[tuple[Recommender, Recommender] | None] = ContextVar("fashionrec_request", default=None)
"""The pinned Recommender of the HTTP request being answered, and the one it was pinned from (:func:`pin_request`)."""


@dataclass
class _Lease:
    """One generation's Recommender and how many requests are using it."""

    rec: Recommender
    users: int = 0
    retired: bool = False
    writer: CatalogDB | None = None
    """A database connection of the writes' own (opened at the first write), so that a write's commit never holds
    the connection queries share."""


def pinned(method: F) -> F:
    """Run ``method`` with one Recommender for its whole duration (``self.recommender`` inside it): the HTTP
    request's (:func:`pin_request`), so every step of one request answers from one generation, else one pinned
    for this call."""

    @functools.wraps(method)
    def wrapper(self: RecommenderService, *args: Any, **kwargs: Any) -> Any:
        if getattr(self._local, "rec", None) is not None:
            return method(self, *args, **kwargs)
        request = _REQUEST.get()
        if request is not None:
            self._local.rec, self._local.base = request
            try:
                return method(self, *args, **kwargs)
            finally:
                self._local.rec = self._local.base = None
        with self.use() as rec:
            self._local.rec, self._local.base = rec.pinned(), rec
            try:
                return method(self, *args, **kwargs)
            finally:
                self._local.rec = self._local.base = None

    return wrapper  # type: ignore[return-value]


class RecommenderService:
    """Thread-safe queries over the current :class:`Recommender`, answered as API models."""

    def __init__(self, recommender: Recommender, settings: ApiSettings) -> None:
        self.settings = settings
        self._model_lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._lease_lock = threading.Lock()
        self._write_lock = threading.RLock()  # writes and reloads, one at a time
        self._lease = _Lease(recommender)
        self._local = threading.local()
        self._facets: tuple[Recommender, FacetsOut] | None = None
        self._trends: tuple[Recommender, TrendsOut] | None = None
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    @property
    def recommender(self) -> Recommender:
        """The Recommender this request is pinned to, else the current one."""
        rec = getattr(self._local, "rec", None)
        return rec if rec is not None else self._lease.rec

    @property
    def _base(self) -> Recommender:
        """The Recommender (not its pinned view) this request uses: what cached views are keyed by."""
        base = getattr(self._local, "base", None)
        return base if base is not None else self._lease.rec

    @contextmanager
    def use(self) -> Iterator[Recommender]:
        """The current Recommender, kept open until the block ends even if a newer one is swapped in meanwhile."""
        with self._lease_lock:
            lease = self._lease
            lease.users += 1
        try:
            yield lease.rec
        finally:
            with self._lease_lock:
                lease.users -= 1
                close = lease.retired and lease.users == 0
            if close:
                _close(lease, self._db_lock)

    @contextmanager
    def _writing(self) -> Iterator[tuple[Recommender, CatalogDB]]:
        """The write lock, the current Recommender and the writes' own database connection."""
        with self._write_lock, self.use() as rec:
            lease = self._lease
            if lease.writer is None:
                lease.writer = CatalogDB(rec.path)
            yield rec, lease.writer

    @property
    @pinned
    def facets(self) -> FacetsOut:
        rec = self._base
        with self._db_lock:
            if self._facets is None or self._facets[0] is not rec:
                counts = count_values((i.metadata for i in rec.db.iter_items()), rec.db.columns)
                self._facets = (rec, _facets(rec.db.count(), rec.db.columns, counts, rec.roles.to_dict()))
            return self._facets[1]

    @property
    @pinned
    def trends(self) -> TrendsOut:
        rec = self._base
        with self._db_lock:
            if self._trends is None or self._trends[0] is not rec:
                self._trends = (rec, TrendsOut.model_validate(compute_trends(rec.db)))
            return self._trends[1]

    # new generations --------------------------------------------------------------------------------------
    def generation(self) -> int | None:
        """The database generation the searched vectors hold (None: a store that does not know it)."""
        generation = self._lease.rec.store.generation
        return None if generation < 0 else int(generation)

    def stale(self) -> bool:
        """Whether the index moved to a newer generation than the one being served."""
        with self.use() as rec, self._db_lock:
            served = rec.store.generation
            return served >= 0 and rec.db.generation != served

    def reload(self) -> Recommender:
        """Open the index again and swap it in between requests; the old Recommender closes after its last one."""
        with self._write_lock:
            old = self._lease.rec
            new = _reopen(old)
            with self._lease_lock:
                previous, self._lease = self._lease, _Lease(new)
                previous.retired = True
                close = previous.users == 0
            if close:
                _close(previous, self._db_lock)
        log.info("index reloaded: %d products, generation %s", len(new), self.generation())
        return new

    def refresh(self) -> bool:
        """Reload when the index moved to a new generation; whether it did. A failure keeps the current one."""
        try:
            with self._write_lock:  # a write between its commit and its store update is not a new generation
                if not self.stale():
                    return False
                self.reload()
                return True
        except Exception as exc:  # noqa: BLE001 - e.g. a re-index with a new model half done: retried next time
            log.warning("index not reloaded yet: %s", exc)
            return False

    def start_refresh(self, interval_s: float) -> None:
        """Check for a new index generation every ``interval_s`` seconds, in a daemon thread."""

        def loop() -> None:
            while not self._stop.wait(interval_s):
                self.refresh()

        self._refresher = threading.Thread(target=loop, name="fashionrec-refresh", daemon=True)
        self._refresher.start()

    def close(self) -> None:
        """Stop the refresh thread and close the current Recommender."""
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join()
        _close(self._lease, self._db_lock)

    @pinned
    def health(self) -> HealthOut:
        embedder = self.recommender.embedder
        return HealthOut(status="ok", items=len(self.recommender), model=embedder.name, dim=embedder.dim,
                         numerics=embedder.numerics)

    @pinned
    def parse_filters(self, specs: Sequence[str]) -> Filters:
        """``["gender=Women", "articleType=Heels,Flats"]`` -> filters, checked against the index's columns (400)."""
        return parse_filters(specs, self.recommender.columns)

    @pinned
    def parse_preferences(self, specs: Sequence[str]) -> Preferences:
        """``["baseColour=Blue"]`` -> soft preferences (hybrid ranking), checked against the index's columns (400)."""
        return parse_preferences(specs, self.recommender.columns)

    @pinned
    def recommend_upload(
        self, data: bytes, k: int, filters: Filters, prefer: Preferences | None = None, consensus: float | None = None,
        box: str | None = None, like: Sequence[str] = (), unlike: Sequence[str] = (), differ: str | None = None,
        garment: str | None = None,
    ) -> RecommendOut:
        """Products similar to the photo in ``data`` (blocking: decode and inference), or to its region ``box``,
        steered by liked / disliked products and ``differ`` (fashionrec.feedback), and searched among the catalogue
        values of the garment class ``garment`` (as shop the look searches that garment) when one is named."""
        rec = self.recommender
        with _steering_errors():
            if garment is not None:
                filters = self._garment_filters(filters, garment)
            examples = check_examples(like, unlike)
            with self._db_lock:
                rec.example_vectors(examples)  # unknown ids fail before the photo is decoded and embedded
            upload = decode_upload(data, self.settings.max_pixels)
            pixels = box_pixels(box, upload.width, upload.height) if box is not None else None
            batch = rec.encoder.preprocess([rec.encoder.prepare(upload.image, box)])
            with self._model_lock:
                vectors, opinions = rec.embed_batch(batch)
            with self._db_lock:  # a named garment wins over the kind the classifier and the catalogue see
                kinds = [()] if garment is not None else rec.kinds_of(vectors, opinions)
                results = rec.steer_kinds(vectors[0], kinds[0], k, filters, examples,
                                          differ=differ, reference=examples.like, prefer=prefer, consensus=consensus)
        query = QueryImageOut(format=upload.format, width=upload.width, height=upload.height)
        region = None if pixels is None else [pixels[0], pixels[1], pixels[2] - pixels[0], pixels[3] - pixels[1]]
        return RecommendOut(k=k, filters=_listed(filters), results=results_out(results), query=query, box=region,
                            like=list(examples.like), unlike=list(examples.unlike), differ=differ)

    def _garment_filters(self, filters: Filters, garment: str) -> Filters:
        """``filters`` steered to garment class ``garment``'s catalogue values (fashionrec.look.steered); an unknown
        class is a 422 naming the known ones."""
        rec = self.recommender
        with self._model_lock:  # the class file is read on first use
            classes = rec.garment_classes
        if garment not in classes.names:
            raise ApiError(422, f"unknown garment {garment!r}; known: {', '.join(classes.names)}")
        return steered(filters, classes, garment, rec.columns)

    @pinned
    def look_upload(self, data: bytes, k: int, filters: Filters) -> LookOut:
        """Shop the look: the garments in the photo in ``data``, each with its k products (blocking: decode,
        localisation, inference and search)."""
        rec = self.recommender
        upload = decode_upload(data, self.settings.max_pixels)
        # Recommender.look localises, embeds and searches in one call: it holds the network, then the database
        with self._model_lock, self._db_lock:
            garments = rec.look(upload.image, k, filters)
        query = QueryImageOut(format=upload.format, width=upload.width, height=upload.height)
        return LookOut(k=k, filters=_listed(filters), query=query, garments=garments_out(garments))

    @pinned
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

    @pinned
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

    @pinned
    def item(self, item_id: str) -> ItemOut:
        with self._db_lock:
            return item_out(self._item(item_id))

    @pinned
    def image_path(self, item_id: str, photo: int = 0) -> Path:
        """The stored catalogue photo of ``item_id`` (its ``photo``-th further one when asked): looked up by id,
        never taken from the client."""
        with self._db_lock:
            self._item(item_id)
            found = self.recommender.db.photo_path(item_id, photo)
        if found is None:
            raise ApiError(404, f"item {item_id!r} has no photo {photo}")
        path = Path(found)
        if not path.is_file():
            raise ApiError(404, f"the image of item {item_id!r} is missing from the catalogue folder")
        return path

    # writes (the items API) ----------------------------------------------------------------------------
    def put_item(self, item_id: str, photos: Sequence[bytes], fields: dict[str, str]) -> tuple[ItemOut, bool]:
        """Add or replace product ``item_id`` with its photo and metadata; the product, and whether it is new.

        Writes hold the write lock from before they pick the Recommender, so none lands in one being swapped out.
        They write with a database connection of their own and the store takes the change in one step, so queries
        (which read the shared connection and a pinned view of the store) never wait for a write."""
        with _write_errors(), self._writing() as (rec, db):
            live.check_item_id(item_id)
            live.check_metadata(fields, rec.columns)
            if not 1 <= len(photos) <= live.MAX_PHOTOS:
                raise ApiError(422, f"send 1 to {live.MAX_PHOTOS} photos in the multipart field 'file' "
                                    f"(got {len(photos)})")
            uploads = [decode_upload(data, self.settings.max_pixels) for data in photos]
            with self._model_lock:
                embedded = [live.embed_photo(rec, data, upload.image, max_pixels=self.settings.max_pixels)
                            for data, upload in zip(photos, uploads)]
            created = db.get(item_id) is None
            item = live.put_item(rec, item_id, embedded, fields, db)
            self._changed()
        return item_out(item), created

    def patch_item(self, item_id: str, fields: dict[str, str]) -> ItemOut:
        """Change some metadata columns of a product."""
        with _write_errors(), self._writing() as (rec, db):
            if not fields:
                raise ApiError(422, "send at least one metadata column as a form field")
            item = live.patch_item(rec, item_id, fields, db)
            self._changed()
        return item_out(item)

    def delete_item(self, item_id: str) -> None:
        with _write_errors(), self._writing() as (rec, db):
            live.delete_item(rec, item_id, db)
            self._changed()

    def _changed(self) -> None:
        """The products changed: derived views are recomputed when asked."""
        with self._db_lock:
            self._facets = self._trends = None

    def _item(self, item_id: str) -> StoredItem:
        item = self.recommender.item(item_id)
        if item is None:
            raise ApiError(404, f"unknown item id {item_id!r}")
        return item


def _reopen(old: Recommender) -> Recommender:
    """``old``'s index opened again with ``old``'s ranking options (its model reused when the index still uses the
    same one; a store outside the index directory, such as Milvus, is kept)."""
    index = Index.open(old.path, old.store if old.store.external else None)
    embedder = old.embedder if old.manifest.same_model(index.manifest) else None
    return Recommender.from_index(index, embedder, old.ranking)


def _close(lease: _Lease, db_lock: threading.Lock) -> None:
    """Close a lease's Recommender and its writes' connection."""
    with db_lock:
        lease.rec.close()
        if lease.writer is not None:
            lease.writer.close()


async def pin_request(request: Request) -> AsyncIterator[None]:
    """FastAPI dependency of every route: the request answers from the Recommender current when it arrived, its
    vector store pinned (:meth:`Recommender.pinned`), through all the service calls it makes; a reload or a write
    landing meanwhile is seen by the next request."""
    service: RecommenderService | None = getattr(request.app.state, "service", None)
    if service is None:
        yield
        return
    with service.use() as rec:
        token = _REQUEST.set((rec.pinned(), rec))
        try:
            yield
        finally:
            try:
                _REQUEST.reset(token)
            except ValueError:  # exited in another context than entered: nothing of ours is left in this one
                pass


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


def _facets(items: int, columns: Sequence[str], counts: dict[str, Counter[str]], roles: dict[str, Any]) -> FacetsOut:
    facets, others = [], []
    for column in columns:
        counter = counts[column]
        if 0 < len(counter) <= min(MAX_FACET_VALUES, max(1, items // 2)):
            values = [ValueCount(value=v, count=c) for v, c in counter.most_common()]
            facets.append(FacetOut(column=column, values=values))
        else:
            others.append(column)
    return FacetsOut(items=items, facets=facets, other_columns=others, roles=ColumnRolesOut(**roles))
