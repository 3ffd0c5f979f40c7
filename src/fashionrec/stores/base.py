"""The contract every vector store meets, so the recommender does not care which engine is behind it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fashionrec.filters import Filters
from fashionrec.manifest import Manifest


@dataclass(frozen=True)
class Hit:
    """One search result: an item id and its cosine similarity to the query."""

    id: str
    score: float
    photo: int = 0
    """Which of the product's photos matched best (0: its first or only one)."""


class VectorStore(Protocol):
    """Search L2-normalised vectors by inner product (= cosine), with metadata filters applied in the search, and
    change one product at a time while searched (the items API: fashionrec.live).

    Writes carry the database generation (fashionrec.catalog_db.CatalogDB.generation) they bring the store to:
    the store records it, so an index opened later sees whether the store is behind its database and catches up
    (fashionrec.publish.catch_up). A write is searchable when the call returns; searches running meanwhile see
    the store before it or after it, never half of it."""

    dim: int
    model: Manifest | None
    """What made the vectors (fashionrec.manifest: backbone, dimension, the head they went through)."""

    @property
    def generation(self) -> int:
        """The database generation the store holds (-1: unknown)."""
        ...

    @generation.setter
    def generation(self, value: int) -> None: ...

    @property
    def external(self) -> bool:
        """Whether the store lives outside the index directory (kept when the index is opened again) rather than
        being the directory's own file (opened again with it)."""
        ...

    def snapshot(self) -> VectorStore:
        """A read-only view of the store as it is now, unchanged by later writes: one request searches one
        generation from start to end (a store that cannot pin one returns itself)."""
        ...

    def upsert(self, item_id: str, vectors: np.ndarray, metadata: Mapping[str, str], *,
               generation: int | None = None) -> None:
        """Add product ``item_id`` (one unit row per photo, in the searched space, its first photo first) or replace
        it whole; the store is then at ``generation`` (when given)."""
        ...

    def remove(self, item_id: str, *, generation: int | None = None) -> bool:
        """Remove a product; whether the store had it. It never comes back from any part of the store."""
        ...

    def set_metadata(self, item_id: str, metadata: Mapping[str, str], *, generation: int | None = None) -> None:
        """New metadata (filter values) for a product the store holds."""
        ...

    def __len__(self) -> int:
        """The number of searchable products."""
        ...

    def stored_metadata(self, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """The metadata the store itself holds for ``ids`` (those it has no copy of are left out: the caller reads
        them from the index database)."""
        ...

    def stored_values(self, column: str) -> set[str] | None:
        """Every value ``column`` takes among the searched products, when the store holds a copy (else None)."""
        ...

    def stored_vectors(self, ids: Sequence[str]) -> np.ndarray | None:
        """The searched vectors of ``ids``, when the store can give every one of them back (else None)."""
        ...

    def search(
        self, queries: np.ndarray, k: int, filters: Filters | None = None, exclude: set[str] | None = None
    ) -> list[list[Hit]]:
        """Top-k hits per query row; ``exclude`` ids never appear (e.g. the query item itself)."""
        ...
