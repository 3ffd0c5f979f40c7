"""Post-training int8 quantisation of an exported backbone (``--precision int8``), with ONNX Runtime's tools.

On CPUs with 8-bit dot-product instructions (AVX-512 VNNI, AVX-VNNI, AMX) an int8 EfficientNet runs about twice
as fast as float32, which is what a catalogue re-index waits on. Activation ranges are calibrated on the images
shipped in ``calibration/`` (not on the catalogue being indexed), so every process that builds the model (the
indexer, each query server, each Ray worker) gets the same quantised network from the same float export, with
no catalogue at hand. The result is checked against the float model on those images and refused when their
mean cosine falls below ``INT8_MIN_MEAN_COSINE``; what int8 costs in retrieval quality is in docs/models.md.

Which CPUs get what (:func:`scheme_ladder`): 8-bit weights times 8-bit activations are exact on CPUs with VNNI or
AMX (and on ARM64, whose dot products widen to 32 bits), but on x86-64 CPUs without VNNI (AVX2, AVX-512 without
VNNI) ONNX Runtime's kernels add pairs of products in saturating 16-bit sums, which distorts compact networks
(the "saturation issue" OpenVINO documents). There the network is quantised with 7-bit weights (no pair of products
can saturate), and its first twelve weight layers (the high-resolution stem and first blocks) and last two, which
lose most from 7 bits, stay in float; docs/models.md has the measured choice. Whatever the CPU,
the schemes are tried in that order and the first whose drift is under the limit is kept (a CPU the flags misjudge
still gets a working model); the scheme and its measured drift are recorded in the model's metadata.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashionrec.embedders.preprocess import Preprocessor
from fashionrec.imageio import load_image

logger = logging.getLogger(__name__)

CALIBRATION_DIR = Path(__file__).with_name("calibration")
CALIBRATION_BATCH = 8
INT8_MIN_MEAN_COSINE = 0.98
"""Lowest mean cosine between int8 and float embeddings of the calibration images; below it the int8 network is
refused (MobileNetV2's ReLU6 activations quantise badly; the measured values are in docs/models.md)."""


@dataclass(frozen=True)
class Int8Scheme:
    """One way of quantising: the name recorded in the model's metadata, 7-bit weights or 8, and how many of the
    first and last weight layers (convolutions and matrix products, in graph order) stay in float."""

    name: str
    reduce_range: bool = False
    float_first: int = 0
    float_last: int = 0


FULL_RANGE = Int8Scheme("u8s8")
SEVEN_BIT = Int8Scheme("u8s7-float-early", reduce_range=True, float_first=12, float_last=2)
SCHEMES = {scheme.name: scheme for scheme in (FULL_RANGE, SEVEN_BIT)}
_EXACT_INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def cpu_flags() -> frozenset[str] | None:
    """The instruction-set flags of this machine's CPU (Linux /proc/cpuinfo), None where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def saturates(machine: str, flags: frozenset[str] | None) -> bool:
    """Whether 8-bit products on this CPU go through saturating 16-bit sums: x86-64 without VNNI or AMX."""
    x86 = machine.lower() in ("x86_64", "amd64", "i386", "i686", "x86")
    return x86 and flags is not None and not (flags & _EXACT_INT8_FLAGS)


def scheme_ladder(machine: str, flags: frozenset[str] | None) -> tuple[Int8Scheme, ...]:
    """The schemes to try, in order, on a CPU of architecture ``machine`` (``platform.machine()``) with ``flags``."""
    return (SEVEN_BIT,) if saturates(machine, flags) else (FULL_RANGE, SEVEN_BIT)


def acceptable(scheme_name: object, machine: str, flags: frozenset[str] | None) -> bool:
    """Whether a model quantised with ``scheme_name`` (None: written before schemes were recorded, full range)
    runs faithfully on this CPU, so that a cached one can be reused rather than quantised again."""
    scheme = SCHEMES.get(str(scheme_name)) if scheme_name is not None else FULL_RANGE
    return scheme is not None and scheme in scheme_ladder(machine, flags)


def choose(ladder: Sequence[Int8Scheme], drift: Callable[[Int8Scheme], tuple[bytes, float]],
           ) -> tuple[Int8Scheme, bytes, float] | None:
    """The first scheme of ``ladder`` whose model (``drift(scheme)`` -> model, mean cosine to float) holds the
    limit, with its model and cosine; None when none does (the caller refuses int8 and names the best cosine)."""
    best = None
    for scheme in ladder:
        model, cosine = drift(scheme)
        if cosine >= INT8_MIN_MEAN_COSINE:
            return scheme, model, cosine
        best = max(best or 0.0, cosine)
        logger.info("int8 scheme %s drifts too far (mean cosine %.3f)%s", scheme.name, cosine,
                    "" if scheme is ladder[-1] else "; trying the next")
    return None


def calibration_batch(preprocess: Preprocessor) -> np.ndarray:
    """The shipped calibration images, preprocessed for the model: (N, 3, S, S) float32, in a fixed order."""
    paths = sorted(CALIBRATION_DIR.glob("*.jpg"))
    if not paths:
        raise RuntimeError(f"no calibration images in {CALIBRATION_DIR} (broken installation)")
    return np.stack([preprocess(load_image(p)) for p in paths])


class _Batches:
    """onnxruntime's CalibrationDataReader protocol over one array, a few images per step."""

    def __init__(self, pixels: np.ndarray, input_name: str) -> None:
        self._steps = iter([{input_name: pixels[i : i + CALIBRATION_BATCH]}
                            for i in range(0, len(pixels), CALIBRATION_BATCH)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._steps, None)


class _QuantizationAdvice(logging.Filter):
    """Drops the advice onnxruntime.quantization logs through the root logger (below ERROR); every other record,
    from any thread, passes untouched: no logger's level changes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "onnxruntime" not in record.pathname


@contextmanager
def _quiet() -> Iterator[None]:
    """Quantise without onnxruntime's advice reaching the user."""
    advice = _QuantizationAdvice()
    root = logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def _weight_layers(model: bytes) -> list[str]:
    """Names of the convolutions and matrix products of ``model``, in graph order."""
    import onnx

    return [n.name for n in onnx.load_from_string(model).graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]


def quantize(model: bytes, pixels: np.ndarray, input_name: str, scheme: Int8Scheme = FULL_RANGE) -> bytes:
    """The float ONNX ``model`` with int8 weights (per channel) and uint8 activations calibrated on ``pixels``,
    quantised as ``scheme`` says (7-bit weights, layers kept in float).

    QOperator format (fused QLinearConv nodes) rather than QDQ, which measured slower on CPUs.
    The result carries no custom metadata; the caller attaches its own."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="fashionrec-int8-") as tmp, _quiet():
        source, prepared, target = (Path(tmp) / n for n in ("float.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(model)
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(target), _Batches(pixels, input_name), quant_format=QuantFormat.QOperator,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        reduce_range=scheme.reduce_range, nodes_to_exclude=_float_layers(model, scheme))
        quantized = onnx.load(str(target))
    del quantized.metadata_props[:]
    return bytes(quantized.SerializeToString())


def _float_layers(model: bytes, scheme: Int8Scheme) -> list[str]:
    if not (scheme.float_first or scheme.float_last):
        return []
    layers = _weight_layers(model)
    return layers[: scheme.float_first] + (layers[-scheme.float_last :] if scheme.float_last else [])
