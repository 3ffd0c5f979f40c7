"""What produced an index's vectors, recorded with the index so queries are embedded the same way.

An index built with one model and queried with another would return nonsense silently; storing the spec (and
a fingerprint of any user-supplied weights file) lets the recommender rebuild the exact embedder, and lets
``index`` notice a model change and re-embed everything.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fashionrec import runtime
from fashionrec.embedders import DEFAULT_MODEL, create_embedder, resolve_image_size
from fashionrec.embedders.protocol import Embedder
from fashionrec.errors import FashionrecError
from fashionrec.manifest import Manifest

BACKENDS = runtime.BACKENDS
PRECISIONS = ("fp32", "int8")  # int8: post-training quantised in ONNX Runtime (fashionrec.embedders.quantize)

if TYPE_CHECKING:  # only an annotation here; importing it loads PyTorch
    from fashionrec.embedders import TorchEmbedder


def _fingerprint(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FashionrecError(f"cannot read weights file {path}: {exc.strerror}") from None
    return hashlib.blake2b(data, digest_size=12).hexdigest()


@dataclass(frozen=True)
class ModelSpec:
    """Backbone name, input size, optional weights file (absolute path) and numeric precision of an embedder."""

    name: str = DEFAULT_MODEL
    image_size: int | None = None
    weights: str | None = None
    precision: str = "fp32"

    def build(self, cache_dir: Path | None = None, backend: str | None = None) -> Embedder:
        """The embedder, run by ONNX Runtime when available (``auto``), else by PyTorch.

        ``backend`` defaults to the process's (fashionrec.runtime, ``auto``); ``onnx`` insists on ONNX Runtime. The
        export is cached in ``cache_dir`` (the index directory), so later processes skip PyTorch entirely.
        """
        backend = backend or runtime.current().backend
        if backend not in BACKENDS:
            raise FashionrecError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if self.precision not in PRECISIONS:
            raise FashionrecError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

        def build_torch() -> TorchEmbedder:
            return create_embedder(self.name, image_size=self.image_size, weights=self.weights)

        from fashionrec.embedders.onnx_embedder import (
            cache_key,
            onnx_embedder,
            onnxruntime_available,
        )

        if self.precision == "fp32" and (backend == "torch" or (backend == "auto" and not onnxruntime_available())):
            return build_torch()
        if backend == "torch":
            raise FashionrecError(f"precision {self.precision} runs in ONNX Runtime only, not with backend torch")
        if not onnxruntime_available():
            raise FashionrecError(f"{'precision ' + self.precision if backend == 'auto' else 'backend onnx'} needs "
                                  "onnxruntime: pip install 'fashionrec[fast]'")
        from fashionrec.embedders.packaged import packaged_onnx

        size = resolve_image_size(self.name, self.image_size)
        key = cache_key(self.name, size, _fingerprint(self.weights), self.precision)
        return onnx_embedder(key, build_torch, cache_dir, self.precision, packaged_onnx(self.name, size, self.weights))

    def cached_numerics(self, cache_dir: Path) -> str:
        """What this spec's model computes in, as the export cached in ``cache_dir`` says: ``fp32``, or for int8
        the scheme it was quantised with for the CPU that wrote it (``int8 (u8s7-float-early)``); the precision
        alone when nothing is cached yet (the scheme is chosen on first use)."""
        from fashionrec.embedders.onnx_embedder import ONNX_DIR, OnnxEmbedder, cache_key

        if self.precision == "fp32":
            return "fp32"
        size = resolve_image_size(self.name, self.image_size)
        path = cache_dir / ONNX_DIR / f"{cache_key(self.name, size, _fingerprint(self.weights), self.precision)}.onnx"
        try:
            return OnnxEmbedder.load(str(path)).numerics
        except Exception:  # noqa: BLE001 -- absent or damaged: it is quantised again on first use
            return f"{self.precision} (not quantised yet)"

    def recorded(self, embedder: Embedder) -> Manifest:
        """The manifest an index records for vectors this spec's built ``embedder`` makes (input size and
        dimension as resolved, the weights file's fingerprint)."""
        return Manifest(name=self.name, dim=embedder.dim, image_size=embedder.image_size, weights=self.weights,
                        weights_fingerprint=_fingerprint(self.weights), precision=self.precision)

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> ModelSpec:
        """The spec that rebuilds the embedder a manifest records."""
        return cls(name=manifest.name, image_size=manifest.image_size, weights=manifest.weights,
                   precision=manifest.precision)

    def weights_changed(self, manifest: Manifest) -> bool:
        """True when the weights file a manifest names no longer holds the weights it was made with."""
        return _fingerprint(self.weights) != manifest.weights_fingerprint
