"""The projection head: a small MLP over frozen backbone features, applied in NumPy.

The backbone's ImageNet features mix "what garment is this" with lighting, pose and background. A head trained
on the catalogue's own labels (``fashionrec train``) maps them to a smaller space where products of one
articleType sit together. It is applied with NumPy only, so a query process that runs the backbone in ONNX
Runtime never imports PyTorch; SQLite keeps the raw backbone features, so a new head never re-embeds an image.

File layout (``INDEX_DIR/head.npz``): the weight arrays, ``meta`` (JSON as bytes: format version, training
settings, held-out product ids) and ``sha256`` over all of them. A corrupt, truncated or foreign file is an
:class:`IndexFormatError`, never a crash or silently wrong vectors.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashionrec.atomic import write_atomically
from fashionrec.errors import IndexFormatError
from fashionrec.manifest import Manifest, recorded_in
from fashionrec.vectors import l2_normalise

HEAD_FILE = "head.npz"
FORMAT_VERSION = 1
WEIGHT_NAMES = ("w1", "b1", "w2", "b2")


def _digest(weights: dict[str, np.ndarray], meta: bytes) -> str:
    sha = hashlib.sha256(meta)
    for name in WEIGHT_NAMES:
        array = np.ascontiguousarray(weights[name], dtype=np.float32)
        sha.update(name.encode() + str(array.shape).encode() + array.tobytes())
    return sha.hexdigest()


@dataclass
class Head:
    """``normalise([b * normalise(x), normalise(relu(x @ w1 + b1) @ w2 + b2)])`` with its training metadata.

    The backbone features are kept beside the MLP output with weight ``b`` (``meta["backbone_weight"]``), so
    cosine = (b² backbone cosine + head cosine) / (b² + 1). The MLP alone, trained on studio shots, made real
    photos worse while helping catalogue queries; the blend helps both (measured in docs/quality.md). ``b = 0`` gives the MLP output alone.
    """

    weights: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def in_dim(self) -> int:
        return int(self.weights["w1"].shape[0])

    @property
    def backbone_weight(self) -> float:
        return float(self.meta.get("backbone_weight", 0.0))

    @property
    def dim(self) -> int:
        return int(self.weights["w2"].shape[1]) + (self.in_dim if self.backbone_weight else 0)

    @property
    def fingerprint(self) -> str:
        """Identifies these exact weights: the FAISS header records it so vectors and head cannot drift apart."""
        return _digest(self.weights, self._meta_bytes())[:24]

    @property
    def model(self) -> Manifest | None:
        """The manifest of the backbone features the head was trained on (None: a head that does not say)."""
        return recorded_in(self.meta.get("model"), "the head")

    @property
    def holdout_ids(self) -> list[str]:
        """Products kept out of training, so an evaluation can query with them honestly."""
        return [str(i) for i in self.meta.get("holdout_ids", [])]

    def apply(self, features: np.ndarray) -> np.ndarray:
        """Backbone features (N, in_dim) -> L2-normalised float32 head-space rows (N, dim)."""
        x = np.asarray(features, dtype=np.float32).reshape(-1, self.in_dim)
        hidden = np.maximum(x @ self.weights["w1"] + self.weights["b1"], 0.0)
        out = l2_normalise(hidden @ self.weights["w2"] + self.weights["b2"])
        if self.backbone_weight:
            out = l2_normalise(np.hstack([self.backbone_weight * l2_normalise(x), out]))
        return out

    def _meta_bytes(self) -> bytes:
        return json.dumps({**self.meta, "format_version": FORMAT_VERSION}, sort_keys=True).encode()

    def save(self, index_dir: str | Path) -> Path:
        """Write ``INDEX_DIR/head.npz`` atomically (temp file, fsync, rename): a kill leaves the old head whole."""
        weights = {n: np.ascontiguousarray(self.weights[n], dtype=np.float32) for n in WEIGHT_NAMES}
        meta = self._meta_bytes()
        buffer = io.BytesIO()
        arrays = {"meta": np.frombuffer(meta, dtype=np.uint8), "sha256": np.array(_digest(weights, meta)), **weights}
        np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy stubs read **kwds as allow_pickle
        return write_atomically(Path(index_dir) / HEAD_FILE, buffer.getvalue())

    @classmethod
    def load(cls, index_dir: str | Path) -> Head:
        """Read and verify ``INDEX_DIR/head.npz``."""
        path = Path(index_dir) / HEAD_FILE
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: np.array(data[name]) for name in (*WEIGHT_NAMES, "meta", "sha256")}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise IndexFormatError(f"{path} is not a readable fashionrec head ({exc}); re-run `fashionrec train`") from None
        meta_bytes = arrays.pop("meta").tobytes()
        expected = str(arrays.pop("sha256"))
        if _digest(arrays, meta_bytes) != expected:
            raise IndexFormatError(f"{path}: checksum mismatch (file corrupt); re-run `fashionrec train`")
        try:
            meta = json.loads(meta_bytes)
        except ValueError:
            raise IndexFormatError(f"{path}: damaged metadata; re-run `fashionrec train`") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise IndexFormatError(
                f"{path}: head format version {meta.get('format_version')}, this fashionrec reads {FORMAT_VERSION}"
            )
        meta.pop("format_version")
        head = cls(weights={n: arrays[n].astype(np.float32) for n in WEIGHT_NAMES}, meta=meta)
        w1, b1, w2, b2 = (head.weights[n] for n in WEIGHT_NAMES)
        if w1.ndim != 2 or w2.ndim != 2 or b1.shape != (w1.shape[1],) or w2.shape[0] != w1.shape[1] or b2.shape != (
            w2.shape[1],
        ):
            raise IndexFormatError(f"{path}: inconsistent weight shapes; re-run `fashionrec train`")
        return head


def load_head(index_dir: str | Path, model: Manifest) -> Head | None:
    """The index's head for backbone ``model``, or None: vectors are then the backbone features as they are.

    A head trained on another backbone's features (the index was rebuilt with ``--model``) cannot apply to these
    vectors and is ignored until ``fashionrec train`` replaces it."""
    if not (Path(index_dir) / HEAD_FILE).exists():
        return None
    head = Head.load(index_dir)
    return head if model.same_model(head.model) else None


def fingerprint_of(head: Head | None) -> str | None:
    return None if head is None else head.fingerprint
