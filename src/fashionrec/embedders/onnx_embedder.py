"""The same backbone run by ONNX Runtime: several times faster than eager PyTorch on a CPU.

The PyTorch module is exported once (with a dynamic batch axis), checked against PyTorch on a fixed batch
(cosine >= 1 - 1e-4 per row, or the export is refused), and cached as ``INDEX_DIR/onnx/<key>.onnx``. Later
processes load the cached file directly and never import PyTorch: preprocessing and normalisation come from
:mod:`fashionrec.embedders.preprocess`, and the parameters they need travel in the file's metadata.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import platform
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from fashionrec.atomic import write_atomically
from fashionrec.embedders.preprocess import Preprocessor, thread_count
from fashionrec.errors import FashionrecError
from fashionrec.vectors import l2_normalise

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from fashionrec.embedders.base import TorchEmbedder

ONNX_DIR = "onnx"
EXPORT_VERSION = 1  # bump when the export itself changes, so cached files are rebuilt
PARITY_MIN_COSINE = 1.0 - 1e-4
INPUT_NAME = "pixels"
_METADATA_KEY = "fashionrec"


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxEmbedder:
    """An :class:`~fashionrec.embedders.base.Embedder` whose network runs in an ONNX Runtime session."""

    def __init__(
        self, model: bytes | str, *, name: str, dim: int, preprocess: Preprocessor, precision: str = "fp32",
        meta: dict[str, object] | None = None, session: Any = None,
    ) -> None:
        self._session = session if session is not None else _session(model)
        self._input = self._session.get_inputs()[0].name
        self.name = name
        self.dim = dim
        self.image_size = preprocess.image_size
        self.preprocess = preprocess
        self.precision = precision
        self.meta = meta or {}  # the file's fashionrec metadata, as read by load()
        self.backend = "onnxruntime" if precision == "fp32" else f"onnxruntime {precision}"
        scheme = self.meta.get("int8_scheme")
        self.numerics = precision if precision == "fp32" else f"{precision} ({scheme or 'u8s8'})"

    def __repr__(self) -> str:
        return f"OnnxEmbedder(name={self.name!r}, dim={self.dim}, image_size={self.image_size})"

    @classmethod
    def load(cls, model: bytes | str) -> OnnxEmbedder:
        """Open an exported model (file path or bytes); what it needs besides the graph is in its metadata."""
        session = _session(model)  # the one session serves both the metadata and the inference
        raw = session.get_modelmeta().custom_metadata_map.get(_METADATA_KEY)
        if raw is None:
            raise FashionrecError("the ONNX file was not exported by fashionrec (no metadata)")
        meta = json.loads(raw)
        preprocess = Preprocessor(int(meta["image_size"]), tuple(meta["mean"]), tuple(meta["std"]))
        return cls(model, name=str(meta["name"]), dim=int(meta["dim"]), preprocess=preprocess,
                   precision=str(meta.get("precision", "fp32")), meta=meta, session=session)

    def embed_arrays(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on a preprocessed batch and L2-normalise each row -> float32 (N, dim)."""
        self.preprocess.check_batch(batch, self.name)
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        features = self._session.run(None, {self._input: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        return l2_normalise(features)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_arrays(np.stack([self.preprocess(image) for image in images]))


def _session(model: bytes | str) -> Any:
    """An ONNX Runtime CPU session with every graph optimisation, on this process's share of the CPUs.

    Its worker threads sleep between operators instead of spinning: on a 2-core machine shared with other work
    (decoding threads while indexing, other requests or processes while serving), spinning threads took the CPU
    the others needed and made a query about twice as slow (docs/performance.md)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = thread_count()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def export(embedder: TorchEmbedder) -> bytes:
    """The embedder's backbone as ONNX bytes (dynamic batch), with its preprocessing in the metadata."""
    import torch

    sample = torch.zeros(1, 3, embedder.image_size, embedder.image_size)
    buffer = io.BytesIO()
    # The tracer warns that "SAME" padding is computed from a Python int: expected, the input size is fixed.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            embedder.torch_module(), (sample,), buffer,  # type: ignore[arg-type]  # a file object is accepted
            input_names=[INPUT_NAME], output_names=["features"],
            dynamic_axes={INPUT_NAME: {0: "batch"}, "features": {0: "batch"}}, opset_version=17, dynamo=False,
        )
    meta = {"name": embedder.name, "dim": embedder.dim, "image_size": embedder.image_size,
            "mean": list(embedder.mean), "std": list(embedder.std), "export_version": EXPORT_VERSION}
    return with_metadata(buffer.getvalue(), meta)


def with_metadata(model: bytes, meta: dict[str, object]) -> bytes:
    """``model`` carrying fashionrec's metadata (what :meth:`OnnxEmbedder.load` needs besides the graph)."""
    import onnx

    proto = onnx.load_from_string(model)
    entry = proto.metadata_props.add()
    entry.key, entry.value = _METADATA_KEY, json.dumps(meta)
    return bytes(proto.SerializeToString())


def int8_model(model: bytes, reference: OnnxEmbedder) -> tuple[bytes, OnnxEmbedder]:
    """The float export ``model`` (run by ``reference``) quantised to int8 with the first scheme of this CPU's
    ladder (:func:`fashionrec.embedders.quantize.scheme_ladder`) that stays close to float on the calibration
    images; the scheme and its drift are recorded in the model's metadata."""
    from fashionrec.embedders import quantize as q

    pixels = q.calibration_batch(reference.preprocess)
    expected = reference.embed_arrays(pixels)
    built: dict[str, OnnxEmbedder] = {}

    def drift(scheme: q.Int8Scheme) -> tuple[bytes, float]:
        data = q.quantize(model, pixels, INPUT_NAME, scheme)
        embedder = OnnxEmbedder.load(with_metadata(data, {**reference.meta, "precision": "int8"}))
        built[scheme.name] = embedder
        return data, float(np.mean(np.sum(expected * embedder.embed_arrays(pixels), axis=1)))

    chosen = q.choose(q.scheme_ladder(platform.machine(), q.cpu_flags()), drift)
    if chosen is None:
        raise FashionrecError(f"int8 quantisation of {reference.name} drifts too far from float32 (mean cosine "
                              f"below {q.INT8_MIN_MEAN_COSINE} on the calibration images with every scheme this "
                              "CPU supports); use precision fp32")
    scheme, data, cosine = chosen
    meta = {**reference.meta, "precision": "int8", "int8_scheme": scheme.name, "int8_mean_cosine": round(cosine, 4)}
    data = with_metadata(data, meta)
    return data, OnnxEmbedder.load(data)


def cached_int8_fits(embedder: OnnxEmbedder) -> bool:
    """Whether a cached int8 model was quantised in a scheme that runs faithfully on this CPU (a cache written on
    a CPU with VNNI and read on one without is quantised again)."""
    from fashionrec.embedders import quantize as q

    return embedder.precision != "int8" or q.acceptable(embedder.meta.get("int8_scheme"), platform.machine(),
                                                        q.cpu_flags())


def parity(reference: TorchEmbedder, candidate: OnnxEmbedder) -> float:
    """Lowest per-row cosine between the two embedders on a fixed, seeded batch of images."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(4, 80, 60, 3), dtype=np.uint8)
    batch = np.stack([reference.preprocess(Image.fromarray(p)) for p in pixels])
    return float(np.min(np.sum(reference.embed_arrays(batch) * candidate.embed_arrays(batch), axis=1)))


def cache_key(name: str, image_size: int, weights_fingerprint: str | None, precision: str = "fp32") -> str:
    """File stem of a cached export: readable, and different whenever the vectors would differ."""
    # Float exports keep the key they had before --precision existed, so their caches stay valid.
    extra = [] if precision == "fp32" else [precision]
    detail = json.dumps([name, image_size, weights_fingerprint, EXPORT_VERSION, *extra])
    suffix = "".join(f"-{p}" for p in extra)
    return f"{name}-{image_size}{suffix}-{hashlib.blake2b(detail.encode(), digest_size=6).hexdigest()}"


def onnx_embedder(
    key: str, build_torch: Callable[[], TorchEmbedder], cache_dir: Path | None, precision: str = "fp32",
    packaged: bytes | None = None,
) -> OnnxEmbedder:
    """The cached export ``cache_dir/onnx/<key>.onnx`` if it loads, else the float export shipped with the package
    (``packaged``, see :mod:`fashionrec.embedders.packaged`), else a fresh, parity-checked export; quantised to int8
    after that when ``precision`` says so.

    A damaged cache file is replaced; a read-only index directory just means the export stays in memory. The
    shipped float export is used as it is, never copied into the index.
    """
    path = cache_dir / ONNX_DIR / f"{key}.onnx" if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            cached = OnnxEmbedder.load(str(path))
        except Exception as exc:  # noqa: BLE001 -- onnxruntime raises its own exception types for a damaged file
            logger.warning("re-exporting damaged ONNX cache %s (%s)", path, exc)
        else:
            if cached_int8_fits(cached):
                return cached
            logger.info("re-quantising %s: its int8 scheme saturates on this CPU", path)
    if packaged is not None:
        data, embedder = packaged, OnnxEmbedder.load(packaged)
        if precision == "fp32":
            return embedder
    else:
        reference = build_torch()
        data = export(reference)
        embedder = OnnxEmbedder.load(data)
        cosine = parity(reference, embedder)
        if cosine < PARITY_MIN_COSINE:
            raise FashionrecError(f"ONNX export of {reference.name} disagrees with PyTorch (cosine {cosine:.6f})")
    if precision == "int8":
        data, embedder = int8_model(data, embedder)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, data)
        except OSError as exc:
            logger.warning("cannot cache the ONNX export in %s (%s)", path.parent, exc.strerror)
    return embedder
