"""Near-duplicate products: the same photo, or nearly the same, listed under several ids.

Every stored vector (the backbone features SQLite keeps, L2-normalised) is compared with every other by a FAISS
range search on an exact inner-product index: all pairs whose cosine is at least the threshold, found in chunks
of queries so memory stays bounded. Pairs are joined into groups (connected components), so three listings of
one photo are one group. Exact search costs N^2 x dim multiply-adds, so the catalogue report runs it only up to
``REPORT_MAX_PRODUCTS``.

How the default threshold was chosen (``benchmarks/duplicates_threshold.py``): docs/live-catalogue.md,
"Near-duplicates".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from fashionrec.errors import FashionrecError
from fashionrec.index import Index
from fashionrec.vectors import l2_normalise

DEFAULT_THRESHOLD = 0.95
REPORT_MAX_PRODUCTS = 10_000
"""``fashionrec index`` adds the groups to catalog_report.json up to this many products (an exact all-pairs search
stays within seconds); past it the report says to run ``fashionrec duplicates``."""
CHUNK = 4096  # queries per range search: bounds the result buffers FAISS allocates


@dataclass(frozen=True)
class DuplicateGroup:
    """Products whose photos are the same or nearly: ids in order, and the lowest and highest linking cosine."""

    ids: list[str]
    min_cosine: float
    max_cosine: float

    def to_dict(self) -> dict[str, object]:
        return {"ids": self.ids, "min_cosine": round(self.min_cosine, 6), "max_cosine": round(self.max_cosine, 6)}


def check_threshold(threshold: float) -> float:
    if not 0.0 < threshold <= 1.0:
        raise FashionrecError(f"threshold must be a cosine in (0, 1], got {threshold}")
    return threshold


def stored_vectors(index_dir: str | Path) -> tuple[list[str], np.ndarray]:
    """Ids and unit-length stored vectors of every embedded product of an index."""
    db, model = Index.open_database(index_dir)
    try:
        ids, vectors = db.vectors(model.dim)
    finally:
        db.close()
    return ids, l2_normalise(vectors)


def similar_pairs(vectors: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """(i, j, cosine) for every pair i < j of rows with cosine >= ``threshold``."""
    check_threshold(threshold)
    if len(vectors) < 2:
        return []
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    pairs = []
    # FAISS range search keeps results with score > radius for inner products; a hair below keeps "at least"
    radius = float(np.nextafter(np.float32(threshold), np.float32(-1)))
    for start in range(0, len(vectors), CHUNK):
        limits, scores, found = index.range_search(vectors[start : start + CHUNK], radius)
        for row in range(len(limits) - 1):
            i = start + row
            for j, score in zip(found[limits[row] : limits[row + 1]], scores[limits[row] : limits[row + 1]]):
                if j > i:
                    pairs.append((i, int(j), float(score)))
    return pairs


def group_pairs(count: int, pairs: list[tuple[int, int, float]]) -> list[tuple[list[int], float, float]]:
    """Connected components of the pairs (rows, lowest and highest linking cosine), biggest first."""
    parent = list(range(count))

    def root(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for i, j, _ in pairs:
        parent[root(i)] = root(j)
    members: dict[int, list[int]] = {}
    scores: dict[int, list[float]] = {}
    for i, j, score in pairs:
        scores.setdefault(root(i), []).append(score)
    for n in range(count):
        if root(n) in scores:
            members.setdefault(root(n), []).append(n)
    groups = [(rows, min(scores[r]), max(scores[r])) for r, rows in members.items()]
    return sorted(groups, key=lambda g: (-len(g[0]), g[0][0]))


def report_section(ids: list[str], vectors: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> dict[str, object]:
    """The ``near_duplicates`` section of catalog_report.json for these products' stored vectors."""
    if len(ids) > REPORT_MAX_PRODUCTS:
        return {"threshold": threshold, "skipped": f"over {REPORT_MAX_PRODUCTS:,} products: run `fashionrec duplicates`"}
    groups = group_pairs(len(ids), similar_pairs(l2_normalise(vectors), threshold))
    return {"threshold": threshold, "groups": [
        DuplicateGroup(sorted(ids[n] for n in rows), low, high).to_dict() for rows, low, high in groups]}


def find_duplicates(index_dir: str | Path, threshold: float = DEFAULT_THRESHOLD) -> list[DuplicateGroup]:
    """Groups of products of the index at ``index_dir`` whose stored vectors have cosine >= ``threshold``."""
    check_threshold(threshold)
    ids, vectors = stored_vectors(index_dir)
    groups = group_pairs(len(ids), similar_pairs(vectors, threshold))
    return [DuplicateGroup(sorted(ids[n] for n in rows), low, high) for rows, low, high in groups]
