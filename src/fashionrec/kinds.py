"""Recognise what kind of garment a query photo shows, so that its search can be steered to that kind.

A small classifier network (``weights/kinds-lite0.onnx``, trained by :mod:`fashionrec.kind_train`, run by ONNX
Runtime) predicts one of the garment classes of ``garments.json`` or ``other`` (anything else: watches, perfume, a
whole outfit) from the same preprocessed input the fashion model embeds (padded to a white square, 128 px). The
query is searched among the catalogue values of the most likely classes that together reach ``threshold`` of the
probability (one class when it is sure, two or three when it hesitates; none when ``other`` is among them or more
would be needed): slippers are answered with footwear, never with deodorant. It applies to indexes whose model reads the same
input (name and input size recorded in the file); for any other, :func:`kind_classifier_for` returns None and
nothing is steered.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from fashionrec.errors import FashionrecError
from fashionrec.garments import open_network, shipped_network
from fashionrec.manifest import Manifest

logger = logging.getLogger(__name__)

KIND_FILE = "kinds-lite0.onnx"
KIND_CARD = "kinds-lite0.json"
OTHER = "other"
DEFAULT_THRESHOLD = 0.5
MAX_KINDS = 3
_METADATA_KEY = "fashionrec_kinds"


class KindClassifier:
    """An open kind classifier: ``kinds(batch)`` -> per row the garment class it confidently shows, or None."""

    def __init__(self, model: bytes | str, threshold: float | None = None) -> None:
        self._session, meta = open_network(model, _METADATA_KEY, "kind classifier")
        self.meta = meta
        self.classes: tuple[str, ...] = tuple(meta["classes"])
        self.image_size = int(meta["image_size"])
        self.reads: tuple[str, ...] = tuple(meta["reads"])  # models whose preprocessed input this one takes
        self.threshold = float(meta.get("threshold", DEFAULT_THRESHOLD) if threshold is None else threshold)
        self._input = self._session.get_inputs()[0].name

    @classmethod
    def open(cls, path: str | Path | None = None) -> KindClassifier:
        """The classifier in ``path``, or the shipped one (checked against the SHA-256 on its card)."""
        if path is not None:
            return cls(str(path))
        return cls(shipped_network(KIND_FILE, KIND_CARD, "kind classifier"))

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """A preprocessed batch (N, 3, S, S), as the fashion model takes it -> class probabilities (N, C), averaged
        over each image and its mirror image."""
        if len(batch) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        both = np.concatenate([batch, batch[..., ::-1]])  # and mirrored: the average of the two views
        probabilities = np.asarray(self._session.run(None, {self._input: np.ascontiguousarray(both, np.float32)})[0])
        return (probabilities[: len(batch)] + probabilities[len(batch) :]) / 2

    def kinds(self, batch: np.ndarray) -> list[tuple[str, ...]]:
        """Per row: the garment classes it shows, most likely first, as many as reach ``threshold`` of the
        probability together (at most ``MAX_KINDS``); empty when that takes more, or when ``other`` is among them
        (not a garment, or unsure whether it is one)."""
        out: list[tuple[str, ...]] = []
        for row in self.probabilities(batch):
            order = np.argsort(-row)
            reach = int(np.searchsorted(np.cumsum(row[order]), self.threshold)) + 1
            names = tuple(self.classes[i] for i in order[:reach])
            out.append(names if reach <= MAX_KINDS and OTHER not in names else ())
        return out


def kind_classifier_for(model: Manifest) -> KindClassifier | None:
    """The shipped kind classifier when ``model`` preprocesses its input as the classifier was trained to read it
    (the shipped fashion model at its input size), else None. A damaged file is logged and steering stays off."""
    if model.name != "fashion" or model.weights is not None:
        return None
    try:
        classifier = KindClassifier.open()
    except FashionrecError as exc:
        logger.warning("kind steering is off: %s", exc)
        return None
    if model.name not in classifier.reads or model.image_size != classifier.image_size:
        return None
    return classifier
