"""A trained text-image alignment: two small projection heads into one shared space, applied in NumPy.

Training needs PyTorch (``fashionrec.text.train``), but answering a query only needs a few matrix products, so
the heads are saved as plain arrays and applied here: a search process never builds a torch module for them.

File (``INDEX_DIR/text/alignment.npz``, a :mod:`fashionrec.artifact` file): the arrays and a JSON header (the image
model the heads were trained on, text model, held-out ids, training settings), checksummed and written atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashionrec import artifact
from fashionrec.errors import IndexFormatError
from fashionrec.manifest import Manifest, recorded_in
from fashionrec.vectors import l2_normalise

TEXT_DIR = "text"
ALIGNMENT_FILE = "alignment.npz"
FORMAT_VERSION = 1
# Layer arrays, in application order: image side "image_w0", "image_b0", "image_w1", ...; text side likewise.
SIDES = ("image", "text")


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh form: the exact function the training module uses (``nn.GELU(approximate="tanh")``)."""
    return 0.5 * x * (1.0 + np.tanh(np.float32(0.7978845608) * (x + np.float32(0.044715) * x**3)))


@dataclass
class Alignment:
    """Projection heads (``layers[side]`` = [(weight (in, out), bias)], GELU between layers) and their header."""

    layers: dict[str, list[tuple[np.ndarray, np.ndarray]]]
    header: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.layers["image"][-1][0].shape[1])

    @property
    def image_model(self) -> Manifest | None:
        """The manifest of the image features the heads were trained on (None: an alignment that does not say)."""
        return recorded_in(self.header.get("image_model"), "the text alignment")

    @property
    def held_out(self) -> list[str]:
        """Product ids kept out of training (evaluate on these)."""
        return list(self.header.get("held_out", []))

    def project(self, side: str, features: np.ndarray) -> np.ndarray:
        """Features of one tower -> unit vectors in the shared space (float32)."""
        x = np.asarray(features, dtype=np.float32)
        layers = self.layers[side]
        for n, (weight, bias) in enumerate(layers):
            x = x @ weight + bias
            if n < len(layers) - 1:
                x = gelu(x)
        return l2_normalise(x)

    # persistence ----------------------------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for side in SIDES:
            for n, (weight, bias) in enumerate(self.layers[side]):
                arrays[f"{side}_w{n}"] = np.ascontiguousarray(weight, dtype=np.float32)
                arrays[f"{side}_b{n}"] = np.ascontiguousarray(bias, dtype=np.float32)
        return arrays

    @property
    def checksum(self) -> str:
        return artifact.checksum(json.dumps(self.header, sort_keys=True), self._arrays())

    def save(self, index_dir: str | Path) -> Path:
        return artifact.save(alignment_path(index_dir), self.header, self._arrays(), FORMAT_VERSION)

    @classmethod
    def load(cls, index_dir: str | Path) -> Alignment:
        """Read and verify; a missing, damaged or foreign file is an IndexFormatError."""
        path = alignment_path(index_dir)
        if not path.is_file():
            raise IndexFormatError(f"no text alignment in {index_dir}; run `fashionrec train-text` first")
        header, arrays = artifact.load(path, FORMAT_VERSION, "text alignment", "re-run `fashionrec train-text`")
        layers = {
            side: [(arrays[f"{side}_w{n}"], arrays[f"{side}_b{n}"]) for n in range(_depth(arrays, side))]
            for side in SIDES
        }
        return cls(layers, header)


def alignment_path(index_dir: str | Path) -> Path:
    return Path(index_dir) / TEXT_DIR / ALIGNMENT_FILE


def _depth(arrays: dict[str, np.ndarray], side: str) -> int:
    depth = sum(1 for key in arrays if key.startswith(f"{side}_w"))
    if depth == 0:
        raise IndexFormatError(f"text alignment has no {side} projection")
    return depth
