"""Milvus as the vector store, for catalogues that outgrow one process (or that a Milvus cluster already serves).

The index directory's SQLite stays the source of truth (metadata and vectors); a Milvus collection holds what
is *searched*: one row per embedded product with its id (primary key), its embedding (inner product = cosine
on L2-normalised vectors) and every metadata column as a VARCHAR field, so filters run inside Milvus in its own
expression language (``gender in ["Women"] and articleType in ["Heels", "Flats"]``).

Publishing is incremental: each row carries a digest of (image digest, metadata, model); a re-index upserts
the rows whose digest changed and deletes the ids SQLite no longer has, nothing else. The collection records
the model and columns it was published from (collection properties), so a query process refuses a collection
that does not match its index directory instead of returning silently wrong products.

URIs: ``http://host:19530`` for a Milvus server, or a local path ending in ``.db`` for Milvus Lite (embedded,
in-process, one process at a time; tests and single-machine trials).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from fashionrec.errors import FashionrecError
from fashionrec.filters import Filters
from fashionrec.manifest import Manifest
from fashionrec.stores.base import Hit

DEFAULT_COLLECTION = "fashionrec"
ID_FIELD = "id"
VECTOR_FIELD = "embedding"
DIGEST_FIELD = "row_digest"
PHOTO_FIELD = "photo"
"""Which photo of its product a row is: 0 (primary key: the product id) or n >= 1 (key: ``photo_key(id, n)``)."""
PHOTO_ROWS = 8  # photos one product may have (fashionrec.live.MAX_PHOTOS): exclusions name every possible row
GENERATION_PROPERTY = "fashionrec.generation"
VARCHAR_MAX = 65_535  # Milvus' VARCHAR limit; catalogue fields are capped far below it (catalog.MAX_FIELD_CHARS)
MODEL_PROPERTY = "fashionrec.model"
COLUMNS_PROPERTY = "fashionrec.columns"
PUBLISH_BATCH = 1000  # rows per upsert: ~5 MB at 1280 dims, well under gRPC's 64 MB message limit
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,200}")
# Words the expression parser reads as operators; a column with such a name is encoded like any odd name.
_KEYWORDS = {"and", "or", "not", "in", "like", "true", "false", "exists", "is", "null"}
_RESERVED = {ID_FIELD, VECTOR_FIELD, DIGEST_FIELD, PHOTO_FIELD}
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def field_name(column: str) -> str:
    """The Milvus field for a metadata column: the name itself when it is a plain identifier, else an encoding.

    Milvus field names must be identifiers; CSV headers can be anything ("Product Name", "colour/shade").
    Hex-encoding keeps the mapping deterministic and collision-free without storing it anywhere.
    """
    if _IDENTIFIER.fullmatch(column) and column.lower() not in _KEYWORDS and column not in _RESERVED:
        return column
    return "col_" + column.encode("utf-8").hex()


def quote(value: str) -> str:
    """A string literal for Milvus' expression language (backslashes, quotes and line breaks escaped)."""
    return '"' + value.translate(_ESCAPES) + '"'


def photo_key(item_id: str, n: int) -> str:
    """The primary key of photo ``n`` of a product (its first photo's key is the product id)."""
    return item_id if n == 0 else f"{item_id}#photo-{n}"


def product_of(key: str, photo: int) -> str:
    """The product id of the row with primary key ``key`` holding photo ``photo``."""
    return key if photo == 0 else key[: -len(f"#photo-{photo}")]


def filter_expression(filters: Filters | None, exclude: Sequence[str] | set[str] | None = None,
                      photo_rows: bool = False) -> str:
    """Filters (OR within a column, AND across) and excluded ids (each of their photo rows, when ``photo_rows``)
    as one boolean expression; "" = no filter."""
    parts = [
        f"{field_name(column)} in [{', '.join(quote(v) for v in sorted(values))}]"
        for column, values in sorted((filters or {}).items())
    ]
    if exclude:
        keys = [photo_key(i, n) for i in sorted(exclude) for n in range(PHOTO_ROWS if photo_rows else 1)]
        parts.append(f"{ID_FIELD} not in [{', '.join(quote(k) for k in keys)}]")
    return " and ".join(parts)


def model_key(model: Manifest) -> str:
    """The manifest as a published row's digest covers it (without its version, so that reading an index in a
    newer manifest version re-publishes nothing)."""
    return json.dumps({k: v for k, v in model.to_dict().items() if k != "manifest_version"}, sort_keys=True)


def row_digest(image_digest: str, meta_json: str, model_key: str) -> str:
    """What a published row depends on: its image, its metadata and the model that embedded it."""
    return hashlib.blake2b(f"{image_digest}\x00{meta_json}\x00{model_key}".encode(), digest_size=16).hexdigest()


def check_uri(uri: str) -> str:
    """Accept a server URL or a Milvus Lite file; anything else is a user mistake worth one clear line."""
    if not uri:
        raise FashionrecError("a Milvus store needs a URI (FASHIONREC_MILVUS_URI): "
                              "http://HOST:19530 for a server, or a local file like ./milvus.db for Milvus Lite")
    if re.match(r"^(https?|tcp)://|^unix:", uri) or uri.endswith(".db"):
        return uri
    raise FashionrecError(
        f"bad Milvus URI {uri!r}: use http://HOST:19530 or a local file ending in .db (Milvus Lite)"
    )


@contextmanager
def _milvus_errors(action: str) -> Iterator[None]:
    """Milvus failures (server down, locked Lite file, schema clash) become one readable line."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as exc:
        raise FashionrecError(f"Milvus: cannot {action}: {getattr(exc, 'message', exc)}") from None


@contextmanager
def _quiet(name: str, level: int) -> Iterator[None]:
    """Raise one library logger's level for a block: its messages there are either harmless or reported by us."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def connect(uri: str, token: str = "", *, create: bool = False) -> Any:
    """A ``MilvusClient`` for a server URL or a Milvus Lite file; ``create`` lets a missing Lite file be made
    (publishing), while a reader given a wrong path gets an error instead of a new empty database."""
    from pymilvus import MilvusClient

    uri = check_uri(uri)
    if uri.endswith(".db") and "://" not in uri:
        if create:
            Path(uri).resolve().parent.mkdir(parents=True, exist_ok=True)
        elif not Path(uri).exists():
            raise FashionrecError(f"no Milvus Lite database at {uri}; run `fashionrec index --store milvus` first")
    # Milvus Lite logs a traceback when its file is locked by another process; the error below says it in one line.
    with _milvus_errors(f"connect to {uri} (a Milvus Lite file can be open in one process only)"), \
            _quiet("milvus_lite", logging.CRITICAL):
        return MilvusClient(uri=uri, token=token, timeout=30)


class MilvusStore:
    """A Milvus collection of embeddings + metadata fields, searched exactly (FLAT index, inner product)."""

    def __init__(self, client: Any, collection: str) -> None:
        self.client = client
        self.collection = collection
        with _milvus_errors(f"open collection {collection!r}"):
            if not client.has_collection(collection):
                raise FashionrecError(
                    f"no Milvus collection {collection!r} there; run `fashionrec index --store milvus` first"
                )
            client.load_collection(collection)  # a reopened collection starts released
            info = client.describe_collection(collection)
        vector = next((f for f in info["fields"] if f["name"] == VECTOR_FIELD), None)
        properties = info.get("properties") or {}
        if vector is None or MODEL_PROPERTY not in properties:
            # Never search, or drop and recreate, somebody else's collection.
            raise FashionrecError(f"Milvus collection {collection!r} was not made by fashionrec; "
                                  "choose another collection name")
        self.dim = int(vector["params"]["dim"])
        self.model: Manifest | None = Manifest.from_json(properties.get(MODEL_PROPERTY), f"Milvus collection {collection!r}")
        self.columns: list[str] = json.loads(properties.get(COLUMNS_PROPERTY, "[]"))
        self.photo_field = any(f["name"] == PHOTO_FIELD for f in info["fields"])
        """Whether rows say which photo they are (collections published before several photos per product: no)."""
        found = properties.get(GENERATION_PROPERTY)
        self._generation = -1 if found is None else int(found)  # -1: unknown (published before it was recorded)
        self._count: int | None = None  # counted lazily, again after writes
        self._photo_rows: bool | None = None  # whether some product has several photos (asked lazily)

    # lifecycle ------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, uri: str, collection: str = DEFAULT_COLLECTION, *, token: str = "") -> MilvusStore:
        return cls(connect(uri, token), collection)

    @classmethod
    def create(
        cls, client: Any, collection: str, dim: int, columns: Sequence[str], model: Manifest
    ) -> MilvusStore:
        """A new, empty collection: exact (FLAT) inner-product index, one VARCHAR field per metadata column."""
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(ID_FIELD, DataType.VARCHAR, is_primary=True, max_length=VARCHAR_MAX)
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field(DIGEST_FIELD, DataType.VARCHAR, max_length=64)
        schema.add_field(PHOTO_FIELD, DataType.INT64)
        for column in columns:
            schema.add_field(field_name(column), DataType.VARCHAR, max_length=VARCHAR_MAX)
        index = client.prepare_index_params()
        index.add_index(field_name=VECTOR_FIELD, index_type="FLAT", metric_type="IP")
        with _milvus_errors(f"create collection {collection!r}"):
            client.create_collection(
                collection, schema=schema, index_params=index, consistency_level="Strong",
                properties={MODEL_PROPERTY: model.to_json(), COLUMNS_PROPERTY: json.dumps(list(columns))},
            )
        return cls(client, collection)

    @classmethod
    def open_or_create(
        cls, client: Any, collection: str, dim: int, columns: Sequence[str], model: Manifest
    ) -> tuple[MilvusStore, bool]:
        """The collection to publish into, and whether it is new: dropped and created again when its dimension or
        columns no longer fit."""
        with _milvus_errors(f"open collection {collection!r}"):
            exists = client.has_collection(collection)
        if exists:
            store = cls(client, collection)
            if store.dim == dim and store.columns == list(columns) and store.photo_field:
                return store, False
            store.drop()
        return cls.create(client, collection, dim, columns, model), True

    def record_model(self, model: Manifest) -> None:
        """Record the manifest of the vectors the collection now holds."""
        with _milvus_errors("record the model"):
            self.client.alter_collection_properties(self.collection, properties={MODEL_PROPERTY: model.to_json()})
        self.model = model

    def drop(self) -> None:
        with _milvus_errors(f"drop collection {self.collection!r}"):
            self.client.drop_collection(self.collection)

    # what the collection keeps besides vectors: nothing the recommender reads (it asks the database) ---------
    def stored_metadata(self, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        return {}

    def stored_values(self, column: str) -> set[str] | None:
        return None

    def stored_vectors(self, ids: Sequence[str]) -> np.ndarray | None:
        return None

    # size, generation ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Products in the collection (not rows: a product with several photos has several)."""
        if self._count is None:
            with _milvus_errors(f"count collection {self.collection!r}"):
                rows = self.client.query(self.collection, filter=f"{PHOTO_FIELD} == 0" if self.photo_field else "",
                                         output_fields=["count(*)"])
            self._count = int(rows[0]["count(*)"])
        return self._count

    def _has_photo_rows(self) -> bool:
        if self._photo_rows is None:
            if not self.photo_field:
                self._photo_rows = False
            else:
                with _milvus_errors(f"count collection {self.collection!r}"):
                    rows = self.client.query(self.collection, filter=f"{PHOTO_FIELD} > 0", output_fields=["count(*)"])
                self._photo_rows = int(rows[0]["count(*)"]) > 0
        return self._photo_rows

    @property
    def generation(self) -> int:
        """The database generation the collection holds (recorded with it; -1 when it was never recorded)."""
        return self._generation

    @generation.setter
    def generation(self, value: int) -> None:
        if value != self._generation:
            with _milvus_errors("record the generation"):
                self.client.alter_collection_properties(self.collection,
                                                        properties={GENERATION_PROPERTY: str(int(value))})
            self._generation = int(value)

    @property
    def external(self) -> bool:
        """True: the collection lives outside the index directory; reopening the index keeps this store."""
        return True

    def snapshot(self) -> MilvusStore:
        """Itself: Milvus answers each search from its own consistent state (Strong consistency)."""
        return self

    # search ---------------------------------------------------------------------------------------------
    def search(
        self, queries: np.ndarray, k: int, filters: Filters | None = None, exclude: set[str] | None = None
    ) -> list[list[Hit]]:
        """Top-k by cosine; filters and exclusions are part of the Milvus expression, so k come back whenever
        k items match."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        unknown = sorted(set(filters or {}) - set(self.columns))
        if unknown:
            raise FashionrecError(
                f"unknown filter column {unknown[0]!r}; filterable columns: {', '.join(self.columns)}"
            )
        if not len(queries):
            return []
        several = self._has_photo_rows()
        with _milvus_errors("search"):
            rows = self.client.search(
                self.collection, data=queries, limit=min(k * PHOTO_ROWS, 16_384) if several else k,
                filter=filter_expression(filters, exclude, self.photo_field),
                anns_field=VECTOR_FIELD, search_params={"metric_type": "IP"},
                output_fields=[PHOTO_FIELD] if several else [],
            )
        return [self._hits(row, k) for row in rows]

    @staticmethod
    def _hits(row: Sequence[Mapping[str, Any]], k: int) -> list[Hit]:
        """Each product once, by its best photo."""
        hits: list[Hit] = []
        seen: set[str] = set()
        for hit in row:
            photo = int((hit.get("entity") or {}).get(PHOTO_FIELD, 0))
            item_id = product_of(str(hit["id"]), photo)
            if item_id not in seen:
                seen.add(item_id)
                hits.append(Hit(item_id, float(hit["distance"]), photo))
                if len(hits) == k:
                    break
        return hits

    # writes: one product at a time (the items API) ---------------------------------------------------------
    def upsert(self, item_id: str, vectors: np.ndarray, metadata: Mapping[str, str], *,
               generation: int | None = None) -> None:
        """Add a product (one row per photo, in the searched space) or replace it whole (photos it no longer has
        are deleted); the collection then records ``generation``."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if len(vectors) > 1 and not self.photo_field:
            raise FashionrecError(f"Milvus collection {self.collection!r} was published before products had several "
                                  "photos; publish it again (`fashionrec index --store milvus`)")
        keys = [photo_key(item_id, n) for n in range(len(vectors))]
        self.upsert_rows(keys, vectors, [metadata] * len(keys), [""] * len(keys), range(len(keys)))
        self.delete([photo_key(item_id, n) for n in range(len(vectors), PHOTO_ROWS)] if self.photo_field else [])
        if generation is not None:
            self.generation = generation

    def remove(self, item_id: str, *, generation: int | None = None) -> bool:
        """Delete a product's rows; whether it had any."""
        keys = [photo_key(item_id, n) for n in range(PHOTO_ROWS if self.photo_field else 1)]
        with _milvus_errors("read the product's rows"):
            had = bool(self.client.get(self.collection, ids=keys[:1], output_fields=[ID_FIELD]))
        self.delete(keys)
        if generation is not None:
            self.generation = generation
        return had

    def set_metadata(self, item_id: str, metadata: Mapping[str, str], *, generation: int | None = None) -> None:
        """New filter values for a product's rows (their vectors stay)."""
        keys = [photo_key(item_id, n) for n in range(PHOTO_ROWS if self.photo_field else 1)]
        with _milvus_errors("read the product's rows"):
            rows = self.client.get(self.collection, ids=keys, output_fields=[VECTOR_FIELD, DIGEST_FIELD, PHOTO_FIELD]
                                   if self.photo_field else [VECTOR_FIELD, DIGEST_FIELD])
        if rows:
            self.upsert_rows([str(r[ID_FIELD]) for r in rows], np.array([r[VECTOR_FIELD] for r in rows], np.float32),
                             [metadata] * len(rows), [""] * len(rows), [int(r.get(PHOTO_FIELD, 0)) for r in rows])
        if generation is not None:
            self.generation = generation

    # writes: publication in batches ---------------------------------------------------------------------
    def upsert_rows(
        self, ids: Sequence[str], vectors: np.ndarray, metadata: Sequence[Mapping[str, str]], digests: Sequence[str],
        photos: Sequence[int] | None = None,
    ) -> None:
        """Insert or replace rows (one Milvus call; keep batches to a few thousand rows)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        photos = [0] * len(ids) if photos is None else list(photos)
        rows = [
            {ID_FIELD: i, VECTOR_FIELD: v, DIGEST_FIELD: d, **({PHOTO_FIELD: n} if self.photo_field else {}),
             **{field_name(c): m.get(c, "") for c in self.columns}}
            for i, v, m, d, n in zip(ids, vectors, metadata, digests, photos)
        ]
        if rows:
            with _milvus_errors("upsert"):
                self.client.upsert(self.collection, rows)
            self._count = None
            if any(photos):
                self._photo_rows = True

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            with _milvus_errors("delete"):
                self.client.delete(self.collection, ids=list(ids))
            self._count = self._photo_rows = None

    def flush(self) -> None:
        """Seal what was written into segments (Milvus Lite searches sealed data much faster than fresh data)."""
        with _milvus_errors("flush"):
            self.client.flush(self.collection)

    def published_digests(self) -> dict[str, str]:
        """id -> row digest of every row in the collection, read in pages."""
        out: dict[str, str] = {}
        # Milvus Lite has no server timestamps and pymilvus warns on every iterator; its fallback is fine.
        with _milvus_errors("read the published rows"), _quiet("pymilvus", logging.ERROR):
            pages = self.client.query_iterator(self.collection, batch_size=PUBLISH_BATCH * 4, filter="",
                                               output_fields=[DIGEST_FIELD])
            try:
                while page := pages.next():
                    out.update((str(r[ID_FIELD]), str(r[DIGEST_FIELD])) for r in page)
            finally:
                pages.close()
        return out
