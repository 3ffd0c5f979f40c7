"""What every embedder offers (PyTorch or ONNX Runtime alike), in a module that imports neither: code that only
holds an embedder (the recommender, indexing, the API) depends on this, never on PyTorch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image


@runtime_checkable
class Embedder(Protocol):
    """Turns images into L2-normalised vectors whose dot product is their cosine similarity.

    ``preprocess`` and ``embed_arrays`` are separate so that callers can decode and preprocess on
    worker threads or processes and run the network on big batches, or swap the network for an
    exported ONNX copy while keeping exactly the same preprocessing.
    """

    name: str
    dim: int
    image_size: int
    numerics: str  # what the network actually computes in: "fp32", or "int8 (<scheme>)" as quantised for this CPU

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """RGB image -> float32 (3, image_size, image_size) array, padded, resized and normalised."""
        ...

    def embed_arrays(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, 3, image_size, image_size) -> float32 (N, dim), every row of unit length."""
        ...

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Preprocess and embed ``images`` in one batch -> float32 (N, dim) unit rows."""
        ...
