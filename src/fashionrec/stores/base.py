"""The contract every vector store meets, so the recommender does not care which engine is behind it."""

from __future__ import annotations

from collections.abc import Sequence
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
    """Search L2-normalised vectors by inner product (= cosine), with metadata filters applied in the search."""

    dim: int
    model: Manifest | None
    """What made the vectors (fashionrec.manifest: backbone, dimension, the head they went through)."""

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
