"""Build or update an index: catalogue -> SQLite (metadata + embeddings) -> vector store.

Incremental: only new or changed images (by content hash) are embedded; removed products leave the index.
Resumable: embeddings are committed to SQLite batch by batch, so after Ctrl-C or kill -9 the next run embeds
only what is still missing. The vector store is rebuilt from SQLite at the end and written atomically.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from fashionrec import manifest as manifests
from fashionrec.catalog import Catalog, CatalogReport, file_digest, read_catalog
from fashionrec.catalog_db import CatalogDB, SyncCounts
from fashionrec.columns import recorded_roles, write_roles
from fashionrec.columns import resolve as resolve_roles
from fashionrec.embedders.preprocess import Preprocessor
from fashionrec.embedders.protocol import Embedder
from fashionrec.errors import FashionrecError
from fashionrec.imageio import load_image
from fashionrec.modelspec import ModelSpec
from fashionrec.publish import FaissPublisher, Publisher, store_budget
from fashionrec.stores.budget import Budget
from fashionrec.stores.faiss_store import INDEX_FILE, IndexKind

REPORT_FILE = "catalog_report.json"


@dataclass(frozen=True)
class IndexResult:
    """What an indexing run did, for the CLI's summary line and for tests."""

    sync: SyncCounts
    embedded: int
    unreadable: int
    total: int
    report: CatalogReport
    index_kind: str

    def summary(self) -> str:
        s = self.sync
        return (
            f"indexed {self.total} items ({self.index_kind}): {s.added} added, {s.changed} changed, {s.removed} removed, "
            f"{self.embedded} embedded, {self.unreadable} unreadable; catalogue: {self.report.summary()}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "added": self.sync.added,
            "changed": self.sync.changed,
            "removed": self.sync.removed,
            "embedded": self.embedded,
            "unreadable": self.unreadable,
            "index_kind": self.index_kind,
            "report": self.report.to_dict(),
        }


Transform = Callable[[str, Image.Image], Image.Image]  # (item id, decoded image) -> the image to embed


DRAFT_MARGIN = 3  # decode large JPEGs at no less than this many times the model's input side (imageio.load_image)


def _decode(
    embedder: Embedder, batch: Sequence[tuple[str, str]], rows: range, out: np.ndarray | list[np.ndarray | None],
    transform: Transform | None,
) -> dict[int, str]:
    """Decode and preprocess ``batch[rows]`` into ``out[rows]`` (with a :class:`Preprocessor`, the slice's uint8
    pixels normalised by one NumPy operation into the batch's float32 array; else whatever the embedder's
    ``preprocess`` returns, per image); the error message per failed row, so one bad file skips alone."""
    preprocess = embedder.preprocess
    fast = preprocess if isinstance(preprocess, Preprocessor) else None
    side = getattr(embedder, "image_size", None)
    draft = DRAFT_MARGIN * side if side and transform is None else None  # views are made from full images
    pixels = np.zeros((len(rows), fast.image_size, fast.image_size, 3), np.uint8) if fast else None
    errors = {}
    for n, row in enumerate(rows):
        item_id, path = batch[row]
        try:
            image = load_image(path, draft=draft)
            image = image if transform is None else transform(item_id, image)
            if fast is not None and pixels is not None:
                pixels[n] = fast.pixels(image)
            else:
                out[row] = preprocess(image)
        except FashionrecError as exc:
            errors[row] = str(exc)
        except OSError as exc:
            errors[row] = f"cannot read {path}: {exc}"
    if fast is not None and pixels is not None and len(rows):
        out[rows.start : rows.stop] = fast.normalise(pixels)
    return errors


EmbeddedBatch = tuple[list[str], np.ndarray, list[tuple[str, str]]]  # ids, vectors, (id, error) failures


def embed_batches(
    embedder: Embedder, items: Sequence[tuple[str, str]], batch_size: int, workers: int | None = None,
    transform: Transform | None = None,
) -> Iterator[EmbeddedBatch]:
    """Yield (ids, vectors, failures) per batch of (id, path) items; ``transform`` changes each decoded image
    first (``fashionrec train`` embeds photo-like views this way).

    The next batch is decoded by a thread pool, a slice per worker, while the model runs on the current one (PIL,
    NumPy and the model release the GIL), so decoding is hidden behind inference. Each worker normalises its slice
    by one NumPy operation straight into the batch's array, which the model then takes as it is: no per-image
    array work, and nothing but the model on the main thread.
    """
    workers = workers or min(4, os.cpu_count() or 1)
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    fast = embedder.preprocess if isinstance(embedder.preprocess, Preprocessor) else None
    side = fast.image_size if fast is not None else 0
    with ThreadPoolExecutor(max_workers=workers) as pool:

        def submit(batch: Sequence[tuple[str, str]]) -> tuple[Any, list[Future[dict[int, str]]]]:
            out: Any = np.empty((len(batch), 3, side, side), np.float32) if fast is not None else [None] * len(batch)
            step = -(-len(batch) // workers)
            return out, [pool.submit(_decode, embedder, batch, range(i, min(i + step, len(batch))), out, transform)
                         for i in range(0, len(batch), step)]

        pending = submit(batches[0]) if batches else None
        for n, batch in enumerate(batches):
            assert pending is not None
            out, futures = pending
            errors: dict[int, str] = {}
            for future in futures:
                errors.update(future.result())
            pending = submit(batches[n + 1]) if n + 1 < len(batches) else None
            ok = [row for row in range(len(batch)) if row not in errors]
            ok_ids = [batch[row][0] for row in ok]
            failures = [(batch[row][0], error) for row, error in sorted(errors.items())]
            if not ok:
                vectors = np.empty((0, embedder.dim), np.float32)
            elif fast is not None:
                vectors = embedder.embed_arrays(out[ok] if errors else out)
            else:
                vectors = embedder.embed_arrays(np.stack([out[row] for row in ok]))
            yield ok_ids, vectors, failures


def _scan(catalog: Catalog, progress: bool) -> list[tuple[str, str, str, dict[str, str]]]:
    """(id, resolved path, content digest, metadata) per item; a file that vanished or cannot be read since the
    catalogue was listed is reported as unreadable instead of stopping the run."""
    rows = []
    for item in tqdm(catalog.items, desc="scanning", unit="img", disable=not progress, leave=False):
        try:
            rows.append((item.id, str(item.image_path.resolve()), file_digest(item.image_path), item.metadata))
        except OSError as exc:
            catalog.report.unreadable_images.append({"id": item.id, "error": f"cannot read {item.image_path}: {exc}"})
    return rows


PHOTO_KEY = "\x00"  # joins a product id and a photo number into one key for the embedding batches


def _scan_more_photos(catalog: Catalog) -> dict[str, list[tuple[str, str]]]:
    """(resolved path, content digest) of every product's further photos (an ``images`` column)."""
    photos: dict[str, list[tuple[str, str]]] = {}
    for item in catalog.items:
        listed = photos[item.id] = []
        for n, path in enumerate(item.more_images, 1):
            try:
                listed.append((str(path.resolve()), file_digest(path)))
            except OSError as exc:
                catalog.report.unreadable_images.append({"id": f"{item.id} (photo {n})", "error": f"cannot read {path}: {exc}"})
    return {item_id: listed for item_id, listed in photos.items() if listed}


def _embed_more_photos(
    db: CatalogDB, embedder: Embedder, batch_size: int, catalog: Catalog,
    engine: Callable[[Embedder, Sequence[tuple[str, str]], int], Iterable[EmbeddedBatch]] | None,
) -> int:
    """Embed the further photos still without a vector; an unreadable one is reported and dropped alone."""
    todo = [(f"{item_id}{PHOTO_KEY}{n}", path) for item_id, n, path in db.pending_photos()]
    done = 0
    for keys, vectors, failures in (engine or embed_batches)(embedder, todo, batch_size):
        db.put_photo_vectors([_photo_key(k) for k in keys], vectors)
        if failures:
            db.drop_photos(_photo_key(k) for k, _ in failures)
            catalog.report.unreadable_images.extend(
                {"id": f"{_photo_key(k)[0]} (photo {_photo_key(k)[1]})", "error": e} for k, e in failures)
        done += len(keys)
    return done


def _photo_key(key: str) -> tuple[str, int]:
    item_id, _, n = key.rpartition(PHOTO_KEY)
    return item_id, int(n)


def _retire_stale_faiss(db: CatalogDB, index_path: Path, rows: Sequence[tuple[Any, ...]]) -> None:
    """Delete the FAISS file before products it holds leave SQLite: a run killed after that then leaves an index
    that says it is incomplete (re-run to finish), never vectors of products the database no longer has."""
    path = index_path / INDEX_FILE
    if path.exists() and {item.id for item in db.iter_items()} - {row[0] for row in rows}:
        path.unlink()


def _drop_orphan_uploads(db: CatalogDB, index_path: Path) -> None:
    """Photos the items API kept (fashionrec.live) for products the catalogue folder no longer has: the folder
    wins, so they go with their products."""
    uploads = index_path / "uploads"
    if uploads.is_dir():
        known = {item.id for item in db.iter_items()}
        for folder in uploads.iterdir():
            if folder.is_dir() and folder.name not in known:
                shutil.rmtree(folder, ignore_errors=True)


def index_catalog(
    catalog_dir: str | os.PathLike[str],
    index_dir: str | os.PathLike[str],
    *,
    metadata: str | os.PathLike[str] | None = None,
    id_column: str = "id",
    image_pattern: str = "images/{id}.jpg",
    columns: Sequence[str] | None = None,
    model: ModelSpec | None = None,
    embedder: Embedder | None = None,
    batch_size: int = 32,
    index_kind: IndexKind = "auto",
    budget: Budget | None = None,
    progress: bool = True,
    publish: Publisher | None = None,
    engine: Callable[[Embedder, Sequence[tuple[str, str]], int], Iterable[EmbeddedBatch]] | None = None,
    label: str | None = None,
    colour_column: str | None = None,
    aux_labels: str | Sequence[str] | None = None,
) -> IndexResult:
    """Index (or update the index of) a catalogue. See the module docstring for the guarantees.

    ``embedder`` overrides building one from ``model`` (tests and the Ray engine pass their own); ``publish``
    replaces the default FAISS publication (fashionrec.publish: the Milvus publisher plugs in here); ``engine`` replaces the local
    ``embed_batches`` (the Ray engine plugs in here). ``budget`` (memory and target recall) chooses the index
    kind when ``index_kind`` is "auto" and tunes its search parameter; it is kept for later publications.

    ``label`` (the column that says which products are the same kind), ``colour_column`` and ``aux_labels`` (a
    list, or comma-separated) are recorded in the index (fashionrec.columns); each one not given keeps what the
    index recorded, else its default (Myntra's names when present). A column the catalogue lacks is an error
    before anything is embedded; changing them alone embeds nothing.
    """
    if batch_size < 1:
        raise FashionrecError(f"batch_size must be at least 1, got {batch_size}")
    index_path = Path(index_dir)
    catalog: Catalog = read_catalog(catalog_dir, metadata, id_column=id_column, image_pattern=image_pattern, columns=columns)
    resolve_roles(catalog.columns, label=label, colour=colour_column, aux=aux_labels)  # fails before any work
    spec = model or ModelSpec()
    index_path.mkdir(parents=True, exist_ok=True)
    embedder = embedder or spec.build(cache_dir=index_path)
    model_info = spec.recorded(embedder)
    db = CatalogDB(index_path, create=True)
    try:
        rows = _scan(catalog, progress)
        if not model_info.same_model(manifests.read_optional(db, f"index in {index_path}")):
            db.clear_vectors()
        manifests.write(db, model_info)
        if budget is not None:
            store_budget(db, budget)
        # Products that left the catalogue stay until the new vectors are ready, so that a server still answering
        # from the previous generation finds every product it knows: swaps between generations.
        removed = sorted({item.id for item in db.iter_items()} - {row[0] for row in rows})
        counts = db.sync(rows, catalog.columns, keep_removed=True)
        write_roles(db, resolve_roles(catalog.columns, recorded_roles(db), label=label, colour=colour_column,
                                      aux=aux_labels))
        db.sync_photos(_scan_more_photos(catalog))
        leaving = set(removed)
        todo = [item for item in db.pending() if item[0] not in leaving]
        embedded = 0
        with tqdm(total=len(todo), desc="embedding", unit="img", disable=not progress) as bar:
            for ids, vectors, failures in (engine or embed_batches)(embedder, todo, batch_size):
                db.put_vectors(ids, vectors)
                if failures:
                    db.drop_items(item_id for item_id, _ in failures)
                    catalog.report.unreadable_images.extend({"id": i, "error": e} for i, e in failures)
                embedded += len(ids)
                bar.update(len(ids) + len(failures))
        embedded += _embed_more_photos(db, embedder, batch_size, catalog, engine)
        _retire_stale_faiss(db, index_path, rows)
        db.drop_items(removed)
        _drop_orphan_uploads(db, index_path)
        kind = (publish or FaissPublisher(index_kind, budget))(db, index_path, model_info)
        from fashionrec.duplicates import report_section

        catalog.report.near_duplicates = report_section(*db.vectors(model_info.dim))
        catalog.report.write(index_path / REPORT_FILE)
        return IndexResult(
            sync=counts,
            embedded=embedded,
            unreadable=len(catalog.report.unreadable_images),
            total=db.count(embedded=True),
            report=catalog.report,
            index_kind=kind,
        )
    finally:
        db.close()
