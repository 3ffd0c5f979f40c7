"""The contract every vector store meets, so the recommender does not care which engine is behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from fashionrec.filters import Filters


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
    model: dict[str, Any]
    """The model description the vectors were made with (name, input size, weights fingerprint, dim, head)."""

    def __len__(self) -> int: ...

    def search(
        self, queries: np.ndarray, k: int, filters: Filters | None = None, exclude: set[str] | None = None
    ) -> list[list[Hit]]:
        """Top-k hits per query row; ``exclude`` ids never appear (e.g. the query item itself)."""
        ...
