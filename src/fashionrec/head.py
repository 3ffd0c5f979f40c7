"""The projection head: a small MLP over frozen backbone features, applied in NumPy.

The backbone's ImageNet features mix "what garment is this" with lighting, pose and background. A head trained
on the catalogue's own labels (``fashionrec train``) maps them to a smaller space where products of one
articleType sit together. It is applied with NumPy only, so a query process that runs the backbone in ONNX
Runtime never imports PyTorch; SQLite keeps the raw backbone features, so a new head never re-embeds an image.

File (``INDEX_DIR/head.npz``, a :mod:`fashionrec.artifact` file): the weight arrays and a JSON header (training
settings, the backbone manifest, held-out product ids). Version 1 files (their own layout: ``meta`` bytes and a
checksum over the weights in layer order) are still read; ``fashionrec train`` writes version 2. A corrupt,
truncated or foreign file is an :class:`IndexFormatError`, never a crash or silently wrong vectors.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashionrec import artifact
from fashionrec.errors import IndexFormatError
from fashionrec.manifest import Manifest, recorded_in
from fashionrec.vectors import l2_normalise

HEAD_FILE = "head.npz"
FORMAT_VERSION = 2
_V1 = 1  # the first layout: still read, and what a head's fingerprint is computed over (so it never changes)
_REMEDY = "re-run `fashionrec train`"
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
        """Identifies these exact weights and settings: a published store records it, so vectors and head cannot
        drift apart. Computed as version 1 files were checksummed, so it is the same whatever the file version."""
        return _digest(self.weights, self._v1_meta_bytes())[:24]

    @property
    def model(self) -> Manifest | None:
        """The manifest of the backbone features the head was trained on (None: a head that does not say)."""
        return recorded_in(self.meta.get("model"), "the head")

    @property
    def worn_garments(self) -> int:
        """How many crops of worn garments (street photos) the head learnt from (0: none; fashionrec.train)."""
        return int(self.meta.get("worn_garments", 0))

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

    def _v1_meta_bytes(self) -> bytes:
        return json.dumps({**self.meta, "format_version": _V1}, sort_keys=True).encode()

    def save(self, index_dir: str | Path) -> Path:
        """Write ``INDEX_DIR/head.npz`` atomically (temp file, fsync, rename): a kill leaves the old head whole."""
        return artifact.save(Path(index_dir) / HEAD_FILE, self.meta, {n: self.weights[n] for n in WEIGHT_NAMES},
                             FORMAT_VERSION)

    @classmethod
    def load(cls, index_dir: str | Path) -> Head:
        """Read and verify ``INDEX_DIR/head.npz`` (either version)."""
        path = Path(index_dir) / HEAD_FILE
        arrays = artifact.read_npz(path, "fashionrec head", _REMEDY)
        if "meta" in arrays:
            meta, weights = _load_v1(path, arrays)
        else:
            meta, weights = artifact.load(path, FORMAT_VERSION, "fashionrec head", _REMEDY, arrays)
        if set(weights) != set(WEIGHT_NAMES):
            raise IndexFormatError(f"{path} is not a readable fashionrec head (arrays {sorted(weights)}); {_REMEDY}")
        head = cls(weights={n: weights[n].astype(np.float32) for n in WEIGHT_NAMES}, meta=meta)
        w1, b1, w2, b2 = (head.weights[n] for n in WEIGHT_NAMES)
        if w1.ndim != 2 or w2.ndim != 2 or b1.shape != (w1.shape[1],) or w2.shape[0] != w1.shape[1] or b2.shape != (
            w2.shape[1],
        ):
            raise IndexFormatError(f"{path}: inconsistent weight shapes; {_REMEDY}")
        return head


def _load_v1(path: Path, arrays: dict[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A version 1 head file: ``meta`` (JSON bytes with its format version), the weights and their checksum."""
    try:
        meta_bytes, expected = arrays["meta"].tobytes(), str(arrays["sha256"])
        weights = {n: arrays[n] for n in WEIGHT_NAMES}
    except KeyError:
        raise IndexFormatError(f"{path} is not a readable fashionrec head; {_REMEDY}") from None
    if _digest(weights, meta_bytes) != expected:
        raise IndexFormatError(f"{path}: checksum mismatch (file corrupt); {_REMEDY}")
    try:
        meta = json.loads(meta_bytes)
    except ValueError:
        raise IndexFormatError(f"{path}: damaged metadata; {_REMEDY}") from None
    if meta.pop("format_version", None) != _V1:
        raise IndexFormatError(f"{path}: head format version mismatch; {_REMEDY}")
    return meta, weights


def load_head(index_dir: str | Path, model: Manifest) -> Head | None:
    """The index's head for backbone ``model``, or None: vectors are then the backbone features as they are.

    A head trained on another backbone's features (the index was rebuilt with ``--model``) cannot apply to these
    vectors and is ignored until ``fashionrec train`` replaces it."""
    if not (Path(index_dir) / HEAD_FILE).exists():
        return None
    head = Head.load(index_dir)
    return head if model.same_model(head.model) else None


def project(features: np.ndarray, head: Head | None) -> np.ndarray:
    """Backbone features in the space of ``head`` (None: the features as they are)."""
    return features if head is None else head.apply(features)


def fingerprint_of(head: Head | None) -> str | None:
    return None if head is None else head.fingerprint
