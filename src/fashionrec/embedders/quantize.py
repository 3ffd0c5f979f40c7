"""Post-training int8 quantisation of an exported backbone (``--precision int8``), with ONNX Runtime's tools.

On CPUs with 8-bit dot-product instructions (AVX-512 VNNI, AVX-VNNI, AMX) an int8 EfficientNet runs about twice
as fast as float32, which is what a catalogue re-index waits on. Activation ranges are calibrated on the images
shipped in ``calibration/`` (not on the catalogue being indexed), so every process that builds the model (the
indexer, each query server, each Ray worker) gets the same quantised network from the same float export, with
no catalogue at hand. The result is checked against the float model on those images and refused when their
mean cosine falls below ``INT8_MIN_MEAN_COSINE``; what int8 costs in retrieval quality is in docs/models.md.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from fashionrec.embedders.preprocess import Preprocessor
from fashionrec.imageio import load_image

CALIBRATION_DIR = Path(__file__).with_name("calibration")
CALIBRATION_BATCH = 8
INT8_MIN_MEAN_COSINE = 0.98
"""Lowest mean cosine between int8 and float embeddings of the calibration images; below it the int8 network is
refused (MobileNetV2's ReLU6 activations quantise badly; the measured values are in docs/models.md)."""


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


def quantize(model: bytes, pixels: np.ndarray, input_name: str) -> bytes:
    """The float ONNX ``model`` with int8 weights (per channel) and uint8 activations calibrated on ``pixels``.

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
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
        quantized = onnx.load(str(target))
    del quantized.metadata_props[:]
    return bytes(quantized.SerializeToString())
