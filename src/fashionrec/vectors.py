"""Unit vectors: every embedding fashionrec stores or searches is L2-normalised, so an inner product is a cosine."""

from __future__ import annotations

import numpy as np

NORM_EPS = 1e-12  # keeps an all-zero row (possible after ReLU) at zero instead of NaN


def l2_normalise(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as a contiguous float32 array; zero rows stay zero."""
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.ascontiguousarray(rows / np.maximum(norms, NORM_EPS), dtype=np.float32)
