"""Retrieval metrics for text search: Recall@k and MRR (one relevant set per query), Precision@k.

Scores are exact (a dense query x gallery matrix) so the numbers measure the alignment, not an ANN index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RECALL_AT = (1, 10)
CHUNK = 512  # queries scored per step (bounded memory on a 41k gallery)


def ranks(queries: np.ndarray, gallery: np.ndarray, relevant: Sequence[set[int]]) -> np.ndarray:
    """1-based rank of the best-ranked relevant gallery row for each query: 1 + rows scoring strictly higher."""
    out = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), CHUNK):
        scores = queries[start : start + CHUNK] @ gallery.T
        for n, row in enumerate(scores):
            best = row[list(relevant[start + n])].max()
            out[start + n] = 1 + int(np.sum(row > best))
    return out


def recall_mrr(rank: np.ndarray) -> dict[str, float]:
    """Recall@1/10 and mean reciprocal rank from the ranks of the relevant items."""
    metrics = {f"recall@{k}": float(np.mean(rank <= k)) for k in RECALL_AT}
    metrics["mrr"] = float(np.mean(1.0 / rank))
    return metrics


def precision_at(queries: np.ndarray, gallery: np.ndarray, labels: Sequence[str], wanted: Sequence[str],
                 k: int = 10) -> float:
    """Mean share of the top-k gallery rows whose label is the query's wanted label."""
    labels_array = np.asarray(labels)
    top = np.argsort(-(queries @ gallery.T), axis=1, kind="stable")[:, :k]
    return float(np.mean([np.mean(labels_array[row] == label) for row, label in zip(top, wanted)]))
