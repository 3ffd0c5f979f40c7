"""The SQLite side of an index: products, their metadata, and their embeddings.

SQLite is the source of truth. Embeddings are written here batch by batch, each batch in its own transaction,
so an interrupted indexing run (Ctrl-C or kill -9) loses at most the batch in flight and resumes from the
rest. The vector store (FAISS file or Milvus collection) is derived from this table and can always be rebuilt.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashionrec.errors import FashionrecError, IndexFormatError

DB_NAME = "catalog.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    image_path TEXT NOT NULL,
    digest TEXT NOT NULL,
    meta TEXT NOT NULL,
    vector BLOB
);
"""


_PHOTOS = """CREATE TABLE IF NOT EXISTS photos (
    item_id TEXT NOT NULL, n INTEGER NOT NULL, image_path TEXT NOT NULL, digest TEXT NOT NULL, vector BLOB,
    PRIMARY KEY (item_id, n)
)"""
"""A product's photos after its first (n >= 1; the first lives in ``items``), with their raw features."""
_CHANGES = "CREATE TABLE IF NOT EXISTS changes (generation INTEGER PRIMARY KEY, item_id TEXT NOT NULL)"
"""Which product each generation raised by the items API changed (one row per write, in the write's transaction):
a vector store behind the database catches up by applying those products again, with no rebuild."""


@dataclass(frozen=True)
class StoredItem:
    """A product as stored: id, image path, metadata."""

    id: str
    image_path: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class SyncCounts:
    """What a catalogue sync changed."""

    added: int
    changed: int
    removed: int
    unchanged: int


class CatalogDB:
    """Thin typed wrapper over the index's SQLite file."""

    def __init__(self, index_dir: Path, *, create: bool = False) -> None:
        self.path = Path(index_dir) / DB_NAME
        if not create and not self.path.is_file():
            raise IndexFormatError(f"no index in {index_dir} (missing {DB_NAME}); run `fashionrec index` first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        try:
            version = self._schema_version(create)
            if version != str(SCHEMA_VERSION):
                raise IndexFormatError(
                    f"{self.path} has schema version {version}; this fashionrec reads {SCHEMA_VERSION}"
                )
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            with self.conn:  # added beside schema 1: older fashionrec versions read the rest and ignore it
                self.conn.execute(_PHOTOS)
                self.conn.execute(_CHANGES)
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise IndexFormatError(f"{self.path} is not a fashionrec index database ({exc})") from None
        except IndexFormatError:
            self.conn.close()
            raise

    def _schema_version(self, create: bool) -> str:
        """The file's schema version. A new file gets the tables and the version in one transaction (a kill cannot
        leave tables without a version); a database that is not ours is refused before anything is written to it."""
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables and create:
            self.conn.executescript(
                f"BEGIN; {_SCHEMA} INSERT INTO settings(key, value) VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;"
            )
            return str(SCHEMA_VERSION)
        found = "settings" in tables and self.conn.execute(
            "SELECT value FROM settings WHERE key='schema_version'"
        ).fetchone()
        if not found:
            raise IndexFormatError(f"{self.path} is not a fashionrec index database (no schema version)")
        return str(found[0])

    def close(self) -> None:
        self.conn.close()

    # settings -------------------------------------------------------------------------------------------
    def get_setting(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", (key, value))

    @property
    def columns(self) -> list[str]:
        """Metadata column names, in CSV order."""
        return json.loads(self.get_setting("columns") or "[]")

    # catalogue sync -------------------------------------------------------------------------------------
    def sync(
        self, rows: Sequence[tuple[str, str, str, dict[str, str]]], columns: Sequence[str], *, keep_removed: bool = False
    ) -> SyncCounts:
        """Make the items table match the catalogue: ``rows`` are (id, image_path, digest, metadata).

        A changed image (new digest) loses its vector so it is embedded again; changed metadata alone keeps it.
        Items no longer in the catalogue are deleted, unless ``keep_removed`` (the caller deletes them later, with
        :meth:`drop_items`). All in one transaction.
        """
        known = {r[0]: r[1] for r in self.conn.execute("SELECT id, digest FROM items")}
        incoming = {r[0] for r in rows}
        added = changed = unchanged = 0
        with self.conn:
            for item_id, image_path, digest, meta in rows:
                meta_json = json.dumps(meta, ensure_ascii=False)
                old = known.get(item_id)
                if old is None:
                    added += 1
                    self.conn.execute(
                        "INSERT INTO items(id, image_path, digest, meta, vector) VALUES (?,?,?,?,NULL)",
                        (item_id, image_path, digest, meta_json),
                    )
                elif old != digest:
                    changed += 1
                    self.conn.execute(
                        "UPDATE items SET image_path=?, digest=?, meta=?, vector=NULL WHERE id=?",
                        (image_path, digest, meta_json, item_id),
                    )
                else:
                    unchanged += 1
                    self.conn.execute("UPDATE items SET image_path=?, meta=? WHERE id=?", (image_path, meta_json, item_id))
            removed = [(i,) for i in known if i not in incoming]
            if not keep_removed:
                self.conn.executemany("DELETE FROM items WHERE id=?", removed)
            self.conn.execute(
                "INSERT OR REPLACE INTO settings(key, value) VALUES ('columns', ?)", (json.dumps(list(columns)),)
            )
        return SyncCounts(added=added, changed=changed, removed=len(removed), unchanged=unchanged)

    def clear_vectors(self) -> None:
        """Forget every embedding (the model changed, so all must be recomputed)."""
        with self.conn:
            self.conn.execute("UPDATE items SET vector=NULL")

    # one product at a time (the items API, `fashionrec add` / `remove`) ---------------------------------
    @property
    def generation(self) -> int:
        """A counter raised by every change of the products (a catalogue sync, an item written or removed): a
        published vector file records the generation it was built from, so a stale one can be told apart."""
        return int(self.get_setting("generation") or 0)

    def new_generation(self) -> int:
        """Raise the generation on its own (a re-published vector file: `fashionrec index`); the new value."""
        with self.conn:
            return self._bump_generation()

    def _bump_generation(self, item_id: str | None = None) -> int:
        """Raise the generation inside the caller's transaction; the new value. ``item_id``: the one product the
        new generation changes (logged, see :meth:`changes_since`)."""
        value = self.generation + 1
        self.conn.execute("INSERT OR REPLACE INTO settings(key, value) VALUES ('generation', ?)", (str(value),))
        if item_id is not None:
            self.conn.execute("INSERT OR REPLACE INTO changes(generation, item_id) VALUES (?, ?)", (value, item_id))
        return value

    def changes_since(self, generation: int) -> list[str] | None:
        """The products changed one at a time after ``generation`` up to now, each once, or None when something
        else raised the generation meanwhile (a publication, a catalogue sync): then only a rebuild is exact."""
        current = self.generation
        if generation > current:
            return None
        rows = self.conn.execute("SELECT generation, item_id FROM changes WHERE generation > ? ORDER BY generation",
                                 (generation,)).fetchall()
        if [int(r[0]) for r in rows] != list(range(generation + 1, current + 1)):
            return None
        return list(dict.fromkeys(str(r[1]) for r in rows))

    def forget_changes(self, upto: int) -> None:
        """Drop the change log up to generation ``upto`` (every store holds it by now)."""
        with self.conn:
            self.conn.execute("DELETE FROM changes WHERE generation <= ?", (upto,))

    def product_vectors(self, item_id: str) -> np.ndarray | None:
        """Raw features of every photo of an embedded product (its first photo first), or None."""
        first = self.vector(item_id)
        if first is None:
            return None
        rows = self.conn.execute("SELECT vector FROM photos WHERE item_id=? AND vector IS NOT NULL ORDER BY n",
                                 (item_id,)).fetchall()
        return np.vstack([first[None, :], *(np.frombuffer(r[0], dtype=np.float32)[None, :] for r in rows)])

    def photo_digests(self) -> Iterator[tuple[str, int, str]]:
        """(product id, photo number, digest) of every embedded further photo of an embedded product."""
        for row in self.conn.execute(
                "SELECT p.item_id, p.n, p.digest FROM photos p JOIN items i ON i.id = p.item_id "
                "WHERE i.vector IS NOT NULL AND p.vector IS NOT NULL ORDER BY p.item_id, p.n"):
            yield str(row[0]), int(row[1]), str(row[2])

    def put_item(
        self, item: StoredItem, digest: str, vector: np.ndarray, extra: Sequence[tuple[str, str, np.ndarray]] = ()
    ) -> int:
        """Add or replace one embedded product, in one transaction; the new generation. ``extra``: its further
        photos as (image path, digest, raw features)."""
        blob = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO items(id, image_path, digest, meta, vector) VALUES (?,?,?,?,?)",
                (item.id, item.image_path, digest, json.dumps(item.metadata, ensure_ascii=False), blob),
            )
            self.conn.execute("DELETE FROM photos WHERE item_id=?", (item.id,))
            self.conn.executemany(
                "INSERT INTO photos(item_id, n, image_path, digest, vector) VALUES (?,?,?,?,?)",
                [(item.id, n, path, d, np.ascontiguousarray(v, dtype=np.float32).tobytes())
                 for n, (path, d, v) in enumerate(extra, 1)],
            )
            return self._bump_generation(item.id)

    def sync_photos(self, photos: Mapping[str, Sequence[tuple[str, str]]]) -> None:
        """Make the further photos match the catalogue: ``photos`` maps a product to its further photos' (image
        path, digest), in order. A photo whose content is unchanged keeps its vector; any other photo (those added
        through the items API included: the folder wins) goes."""
        known = {(r[0], int(r[1])): r[2] for r in self.conn.execute("SELECT item_id, n, digest FROM photos")}
        wanted = {(item_id, n): (path, digest) for item_id, listed in photos.items()
                  for n, (path, digest) in enumerate(listed, 1)}
        with self.conn:
            self.conn.executemany("DELETE FROM photos WHERE item_id=? AND n=?",
                                  [key for key, digest in known.items() if wanted.get(key, ("", None))[1] != digest])
            for (item_id, n), (path, digest) in wanted.items():
                if known.get((item_id, n)) == digest:
                    self.conn.execute("UPDATE photos SET image_path=? WHERE item_id=? AND n=?", (path, item_id, n))
                else:
                    self.conn.execute("INSERT INTO photos(item_id, n, image_path, digest, vector) VALUES (?,?,?,?,NULL)",
                                      (item_id, n, path, digest))

    def pending_photos(self) -> list[tuple[str, int, str]]:
        """(product id, photo number, image path) of further photos that still need an embedding."""
        return [(r[0], int(r[1]), r[2]) for r in self.conn.execute(
            "SELECT item_id, n, image_path FROM photos WHERE vector IS NULL ORDER BY item_id, n")]

    def put_photo_vectors(self, keys: Sequence[tuple[str, int]], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self.conn:
            self.conn.executemany("UPDATE photos SET vector=? WHERE item_id=? AND n=?",
                                  [(v.tobytes(), i, n) for (i, n), v in zip(keys, vectors)])

    def drop_photos(self, keys: Iterable[tuple[str, int]]) -> None:
        with self.conn:
            self.conn.executemany("DELETE FROM photos WHERE item_id=? AND n=?", list(keys))

    def photo_vectors(self, dim: int) -> tuple[list[str], list[int], np.ndarray]:
        """Every further photo of an embedded product: product ids, photo numbers, (N, dim) raw features."""
        rows = self.conn.execute(
            "SELECT p.item_id, p.n, p.vector FROM photos p JOIN items i ON i.id = p.item_id "
            "WHERE i.vector IS NOT NULL AND p.vector IS NOT NULL ORDER BY p.item_id, p.n").fetchall()
        matrix = np.empty((len(rows), dim), dtype=np.float32)
        for n, (_, _, blob) in enumerate(rows):
            matrix[n] = np.frombuffer(blob, dtype=np.float32)
        return [r[0] for r in rows], [int(r[1]) for r in rows], matrix

    def photo_path(self, item_id: str, n: int) -> str | None:
        """Where photo ``n`` of a product is (0: its first)."""
        if n == 0:
            item = self.get(item_id)
            return None if item is None else item.image_path
        row = self.conn.execute("SELECT image_path FROM photos WHERE item_id=? AND n=?", (item_id, n)).fetchone()
        return None if row is None else str(row[0])

    def update_metadata(self, item_id: str, metadata: dict[str, str]) -> int | None:
        """Replace one product's metadata; the new generation, or None when there is no such product."""
        with self.conn:
            done = self.conn.execute(
                "UPDATE items SET meta=? WHERE id=?", (json.dumps(metadata, ensure_ascii=False), item_id)
            ).rowcount
            return self._bump_generation(item_id) if done else None

    def delete_item(self, item_id: str) -> int | None:
        """Remove one product; the new generation, or None when there was no such product."""
        with self.conn:
            done = self.conn.execute("DELETE FROM items WHERE id=?", (item_id,)).rowcount
            self.conn.execute("DELETE FROM photos WHERE item_id=?", (item_id,))
            return self._bump_generation(item_id) if done else None

    # embeddings -----------------------------------------------------------------------------------------
    def pending(self) -> list[tuple[str, str]]:
        """(id, image_path) of items that still need an embedding, in id order (deterministic resumes)."""
        return [(r[0], r[1]) for r in self.conn.execute("SELECT id, image_path FROM items WHERE vector IS NULL ORDER BY id")]

    def put_vectors(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Store one batch of embeddings atomically."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self.conn:
            self.conn.executemany(
                "UPDATE items SET vector=? WHERE id=?", [(v.tobytes(), i) for i, v in zip(ids, vectors)]
            )

    def drop_items(self, ids: Iterable[str]) -> None:
        """Remove items whose images turned out to be unreadable (they are reported, not indexed)."""
        gone = [(i,) for i in ids]
        with self.conn:
            self.conn.executemany("DELETE FROM items WHERE id=?", gone)
            self.conn.executemany("DELETE FROM photos WHERE item_id=?", gone)

    def vectors(self, dim: int) -> tuple[list[str], np.ndarray]:
        """All embedded items, in id order: their ids and an (N, dim) float32 matrix."""
        ids: list[str] = []
        matrix = np.empty((self.count(embedded=True), dim), dtype=np.float32)
        for n, (item_id, blob) in enumerate(
            self.conn.execute("SELECT id, vector FROM items WHERE vector IS NOT NULL ORDER BY id")
        ):
            ids.append(item_id)
            matrix[n] = np.frombuffer(blob, dtype=np.float32)
        return ids, matrix[: len(ids)]

    def embedded_digests(self) -> Iterator[tuple[str, str, str]]:
        """(id, image digest, metadata JSON) of every embedded item, streamed without vectors: what a derived
        store (Milvus) compares against to publish only the rows that changed."""
        yield from self.conn.execute("SELECT id, digest, meta FROM items WHERE vector IS NOT NULL ORDER BY id")

    def stacked_vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The (len(ids), dim) float32 vectors of ``ids``, in that order; every one must be embedded."""
        rows = [self.vector(i) for i in ids]
        missing = [i for i, row in zip(ids, rows, strict=True) if row is None]
        if missing:
            raise FashionrecError(f"item {missing[0]!r} has no embedding yet; run `fashionrec index`")
        return np.stack([row for row in rows if row is not None])

    def vector(self, item_id: str) -> np.ndarray | None:
        row = self.conn.execute("SELECT vector FROM items WHERE id=?", (item_id,)).fetchone()
        if row is None or row[0] is None:
            return None
        return np.frombuffer(row[0], dtype=np.float32).copy()

    # reads ----------------------------------------------------------------------------------------------
    def count(self, *, embedded: bool = False) -> int:
        where = " WHERE vector IS NOT NULL" if embedded else ""
        return int(self.conn.execute(f"SELECT COUNT(*) FROM items{where}").fetchone()[0])

    def get(self, item_id: str) -> StoredItem | None:
        row = self.conn.execute("SELECT id, image_path, meta FROM items WHERE id=?", (item_id,)).fetchone()
        return None if row is None else StoredItem(row[0], row[1], json.loads(row[2]))

    def get_many(self, ids: Sequence[str]) -> dict[str, StoredItem]:
        """Metadata for a page of results, in one query."""
        out: dict[str, StoredItem] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(f"SELECT id, image_path, meta FROM items WHERE id IN ({marks})", chunk):
                out[row[0]] = StoredItem(row[0], row[1], json.loads(row[2]))
        return out

    def iter_items(self) -> Iterator[StoredItem]:
        for row in self.conn.execute("SELECT id, image_path, meta FROM items ORDER BY id"):
            yield StoredItem(row[0], row[1], json.loads(row[2]))


def open_db(index_dir: Path) -> closing[CatalogDB]:
    """Context manager for a read/write handle on an existing index database."""
    return closing(CatalogDB(index_dir))


@contextmanager
def closed_on_failure(db: CatalogDB) -> Iterator[CatalogDB]:
    """Use ``db`` while opening an index: if that fails, close it (a database damaged past its header, which only
    shows when its pages are read, becomes an :class:`IndexFormatError`)."""
    try:
        yield db
    except sqlite3.DatabaseError as exc:
        db.close()
        raise IndexFormatError(f"{db.path} is damaged ({exc}); rebuild the index with `fashionrec index`") from None
    except BaseException:
        db.close()
        raise
