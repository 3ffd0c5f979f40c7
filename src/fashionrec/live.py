"""Change one product of an index while it is in use: add or replace it with a photo, change its metadata, remove it.

The order of every write is what makes it durable and immediately searchable:

1. the photo is kept under ``INDEX_DIR/uploads/<id>/<digest>.<ext>`` (written atomically; its name is its content,
   so a replaced product's old photo stays in place until the database no longer names it);
2. SQLite, the source of truth, gets the product (its raw backbone features, as ``fashionrec index`` stores them)
   and a new generation (:attr:`CatalogDB.generation`), in one committed transaction;
3. the open vector store takes the change at that generation (:class:`~fashionrec.stores.base.VectorStore`'s
   writes: the FAISS store puts it in its exact delta and marks the rows it replaces, no index is rebuilt; a Milvus
   collection upserts and deletes its rows).

The FAISS file is saved when the store merges its delta (in the background), not at every write. A process killed
after 2 leaves a store behind the database; whoever opens the index next applies the products changed since the
store's generation again from the database's change log (:func:`fashionrec.publish.catch_up`), so nothing
committed is lost.

The caller serialises writes on one :class:`Recommender` (the API server holds its write lock around them); they
may use a database connection of their own (``db``), so that queries reading the shared one do not wait for a
write's commit.
A later ``fashionrec index`` of the catalogue folder makes the index match the folder again: the folder wins.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fashionrec.atomic import write_atomically
from fashionrec.catalog_db import CatalogDB, StoredItem
from fashionrec.errors import FashionrecError, ImageError
from fashionrec.imageio import ACCEPTED_FORMATS, DEFAULT_MAX_PIXELS, load_image
from fashionrec.publish import catch_up, rebuild
from fashionrec.recommend import Recommender

UPLOADS_DIR = "uploads"
ITEM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""Ids the items API accepts: they name a folder under ``uploads/``, so no separators and no leading dot."""
MAX_PHOTOS = 8
"""Photos one product may have."""
EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}


class UnknownItemError(FashionrecError):
    """The product named does not exist."""


@dataclass(frozen=True)
class Photo:
    """An uploaded product photo, checked and embedded, ready to be stored."""

    data: bytes
    extension: str
    digest: str
    features: np.ndarray
    """Raw backbone features (one row), as SQLite keeps them."""


def check_item_id(item_id: str) -> str:
    if not ITEM_ID.fullmatch(item_id):
        raise FashionrecError(
            f"item_id {item_id!r} is not accepted: 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return item_id


def check_metadata(metadata: Mapping[str, str], columns: list[str]) -> dict[str, str]:
    """``metadata`` if every key is a column of the index (an unknown one is an error naming it)."""
    unknown = [key for key in metadata if key not in columns]
    if unknown:
        raise FashionrecError(f"metadata: unknown column {unknown[0]!r}; columns: {', '.join(columns)}")
    return {key: str(value) for key, value in metadata.items()}


def photo_format(data: bytes) -> str:
    """The accepted format of ``data`` (read from its header), or an :class:`ImageError`."""
    try:
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as probe:
            return str(probe.format)
    except Exception:  # noqa: BLE001 - any failure to identify is the same user error
        raise ImageError(f"photo: not an image in an accepted format ({', '.join(ACCEPTED_FORMATS)})") from None


def embed_photo(
    rec: Recommender, data: bytes, image: Image.Image | None = None, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Photo:
    """Check and embed a product photo with ``rec``'s own model, as ``fashionrec index`` embeds catalogue photos
    (no query-side cropping). ``image`` is ``data`` already decoded, when the caller has it."""
    extension = EXTENSIONS.get(photo_format(data), "jpg")
    image = image if image is not None else load_image(data, max_pixels=max_pixels)
    features = rec.encoder.features(rec.encoder.preprocess([image]))
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    return Photo(data, extension, digest, np.ascontiguousarray(features, dtype=np.float32))


def put_item(
    rec: Recommender, item_id: str, photos: Photo | Sequence[Photo], metadata: Mapping[str, str],
    db: CatalogDB | None = None,
) -> StoredItem:
    """Add product ``item_id`` or replace it whole: its photos (one or several: each is embedded, and the product
    is found by whichever matches a query best), and its metadata (columns not given are empty). ``db``: the
    database connection to write with (default: ``rec``'s)."""
    db = db or rec.db
    check_item_id(item_id)
    photos = [photos] if isinstance(photos, Photo) else list(photos)
    if not 1 <= len(photos) <= MAX_PHOTOS:
        raise FashionrecError(f"photos: a product has 1 to {MAX_PHOTOS} photos, got {len(photos)}")
    values = check_metadata(metadata, rec.columns)
    folder = Path(rec.index_dir) / UPLOADS_DIR / item_id
    folder.mkdir(parents=True, exist_ok=True)
    paths = [write_atomically(folder / f"{p.digest}.{p.extension}", p.data).resolve() for p in photos]
    item = StoredItem(item_id, str(paths[0]), {c: values.get(c, "") for c in rec.columns})
    extra = [(str(path), p.digest, p.features[0]) for path, p in zip(paths[1:], photos[1:])]
    generation = db.put_item(item, photos[0].digest, photos[0].features[0], extra)
    vectors = rec.project(np.vstack([p.features for p in photos]))
    _apply(rec, db, generation, lambda: rec.store.upsert(item_id, vectors, item.metadata, generation=generation))
    for old in folder.iterdir():  # photos of this product's earlier versions: no longer named by the database
        if old.resolve() not in paths and not old.name.startswith("."):
            old.unlink(missing_ok=True)
    return item


def patch_item(rec: Recommender, item_id: str, metadata: Mapping[str, str], db: CatalogDB | None = None) -> StoredItem:
    """Change some metadata columns of an existing product; its photo and vector stay."""
    db = db or rec.db
    values = check_metadata(metadata, rec.columns)
    current = db.get(item_id)
    if current is None:
        raise UnknownItemError(f"unknown item id {item_id!r}")
    merged = {**current.metadata, **values}
    generation = db.update_metadata(item_id, merged)
    if generation is None:
        raise UnknownItemError(f"unknown item id {item_id!r}")
    _apply(rec, db, generation, lambda: rec.store.set_metadata(item_id, merged, generation=generation))
    return StoredItem(item_id, current.image_path, merged)


def delete_item(rec: Recommender, item_id: str, db: CatalogDB | None = None) -> None:
    """Remove a product (and the photos the items API kept for it; a catalogue folder's photo is left alone)."""
    db = db or rec.db
    generation = db.delete_item(item_id)
    if generation is None:
        raise UnknownItemError(f"unknown item id {item_id!r}")
    _apply(rec, db, generation, lambda: rec.store.remove(item_id, generation=generation))
    if ITEM_ID.fullmatch(item_id):
        shutil.rmtree(Path(rec.index_dir) / UPLOADS_DIR / item_id, ignore_errors=True)


def _apply(rec: Recommender, db: CatalogDB, generation: int, change: Callable[[], object]) -> None:
    """Bring the open store to ``generation``: by ``change`` when it was one generation behind, else (another
    process wrote too) by applying every product changed since its generation again from the database's change
    log, or, when something else moved the generation (a publication), by publishing the database into it again."""
    store = rec.store
    if store.generation == generation - 1:
        change()
    elif not catch_up(store, db, rec.path, rec.manifest):
        rebuild(store, db, rec.path, rec.manifest)
    rec.forget_cached_values()
