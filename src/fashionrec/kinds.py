"""Recognise what kind of garment a query photo shows, so that its search can be steered to that kind.

A small classifier network (``weights/kinds-lite0.onnx``, trained by :mod:`fashionrec.kind_train`, run by ONNX
Runtime) predicts one of the garment classes of ``garments.json`` or ``other`` (anything else: watches, perfume, a
whole outfit) from the same preprocessed input the fashion model embeds (padded to a white square, 128 px). Its
answer is a mix of kinds (:meth:`KindClassifier.kinds`): the classes given at least ``min_share`` of the
probability, most likely first, at most ``MAX_KINDS``. The results are shared out among them in proportion
(:func:`allot`): a sure dress gets five dresses, a photo that is a coat or perhaps a dress gets coats first and a
dress or two, each kind searched among its own catalogue values, ``other`` among everything. Slippers are answered
with footwear, never with deodorant; a hesitant classifier hedges rather than bets every place on one guess (the
intent-aware diversification of search engines, with the garment kind as the intent). It applies to indexes whose
model reads the same input (name and input size recorded in the file); for any other, :func:`kind_classifier_for`
returns None and nothing is steered.

The classifier sees the photo alone; the catalogue adds its own opinion. The ``neighbours`` products nearest the
query (unfiltered) vote for their classes (:func:`class_of_values` of their catalogue value), and the mix is taken
from the classifier's probabilities blended with that vote (``neighbour_weight`` of it, :func:`blend`): a catalogue
that answers a sweater with sweaters gives ``knitwear`` a place even when the photo alone looks like a top, and one
that agrees with the classifier makes it surer. The vote is only as good as the index's idea of a worn garment: it
is cast on indexes whose head learnt crops of worn garments (``fashionrec train --street``), never on others, whose
nearest products of a street photo are too often of another kind (:func:`kind_classifier_for`). Both settings were
chosen on street photos (``benchmarks/look_tuning.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from fashionrec.errors import FashionrecError
from fashionrec.garments import GarmentClasses, open_network, shipped_network
from fashionrec.manifest import Manifest

logger = logging.getLogger(__name__)

KIND_FILE = "kinds-lite0.onnx"
KIND_CARD = "kinds-lite0.json"
OTHER = "other"
MIN_SHARE = 0.1  # a class given less of the probability takes no place among the results
MAX_KINDS = 3
NEIGHBOURS = 10  # nearest catalogue products that vote for their classes
NEIGHBOUR_WEIGHT = 0.1  # the vote's share of the blended probabilities (0: the classifier alone)
_METADATA_KEY = "fashionrec_kinds"

Kinds = tuple[tuple[str, float], ...]  # (garment class or OTHER, probability), most likely first
T = TypeVar("T")


class KindClassifier:
    """An open kind classifier: ``kinds(batch)`` -> per row the mix of garment kinds it shows."""

    def __init__(self, model: bytes | str, min_share: float | None = None, max_kinds: int = MAX_KINDS,
                 neighbour_weight: float = NEIGHBOUR_WEIGHT, neighbours: int = NEIGHBOURS) -> None:
        self._session, meta = open_network(model, _METADATA_KEY, "kind classifier")
        self.meta = meta
        self.classes: tuple[str, ...] = tuple(meta["classes"])
        self.image_size = int(meta["image_size"])
        self.reads: tuple[str, ...] = tuple(meta["reads"])  # models whose preprocessed input this one takes
        self.min_share = float(meta.get("min_share", MIN_SHARE) if min_share is None else min_share)
        if not 0.0 <= self.min_share <= 1.0 or max_kinds < 1:
            raise FashionrecError(f"min_share must be within 0..1 and max_kinds at least 1, not {self.min_share} "
                                  f"and {max_kinds}")
        self.max_kinds = max_kinds
        if not 0.0 <= neighbour_weight <= 1.0 or neighbours < 0:
            raise FashionrecError(f"neighbour_weight must be within 0..1 and neighbours at least 0, not "
                                  f"{neighbour_weight} and {neighbours}")
        self.neighbour_weight = float(neighbour_weight) if neighbours else 0.0
        self.neighbours = neighbours if self.neighbour_weight else 0  # how many products vote (0: no vote)
        self._input = self._session.get_inputs()[0].name

    @classmethod
    def open(cls, path: str | Path | None = None, *, min_share: float | None = None, max_kinds: int = MAX_KINDS,
             neighbour_weight: float = NEIGHBOUR_WEIGHT, neighbours: int = NEIGHBOURS) -> KindClassifier:
        """The classifier in ``path``, or the shipped one (checked against the SHA-256 on its card); ``min_share``
        replaces the probability a class needs to take places (default: the file's, else ``MIN_SHARE``),
        ``max_kinds`` the most kinds that share them, ``neighbour_weight`` / ``neighbours`` the nearest products'
        vote (0: none)."""
        network = str(path) if path is not None else shipped_network(KIND_FILE, KIND_CARD, "kind classifier")
        return cls(network, min_share, max_kinds, neighbour_weight, neighbours)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """A preprocessed batch (N, 3, S, S), as the fashion model takes it -> class probabilities (N, C), averaged
        over each image and its mirror image."""
        if len(batch) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        both = np.concatenate([batch, batch[..., ::-1]])  # and mirrored: the average of the two views
        probabilities = np.asarray(self._session.run(None, {self._input: np.ascontiguousarray(both, np.float32)})[0])
        return (probabilities[: len(batch)] + probabilities[len(batch) :]) / 2

    def kinds(self, batch: np.ndarray) -> list[Kinds]:
        """Per row: the classes (garment classes or ``other``) given at least ``min_share`` of the probability,
        with it, most likely first, at most ``max_kinds``; empty when none is (no steering). The photos alone:
        :meth:`mixes` adds the nearest products' vote."""
        return self.mixes(self.probabilities(batch))

    def mixes(self, probabilities: np.ndarray, voted: Sequence[Sequence[str]] | None = None) -> list[Kinds]:
        """:meth:`kinds` of rows of class probabilities the classifier gave already; ``voted``: per row, the
        classes of the query's nearest catalogue products (:meth:`blended`)."""
        if voted is None:
            return [self.mix(row) for row in probabilities]
        return [self.mix(self.blended(row, near)) for row, near in zip(probabilities, voted, strict=True)]

    def blended(self, row: np.ndarray, voted: Sequence[str]) -> np.ndarray:
        """Class probabilities ``row`` blended with the vote of the classes ``voted`` (those of the nearest
        catalogue products, ``other`` for a product of no class): ``neighbour_weight`` of the result is the vote."""
        return blend(row, vote(voted, self.classes), self.neighbour_weight)

    def mix(self, row: np.ndarray) -> Kinds:
        """One row of class probabilities -> its mix of kinds (see :meth:`kinds`)."""
        return mix_of(row, self.classes, self.min_share, self.max_kinds)

    def weighted(self, row: np.ndarray, name: str, weight: float) -> np.ndarray:
        """``row`` (class probabilities) with ``weight`` more on class ``name``, renormalised: another opinion
        (a look's localiser naming the garment) added to the classifier's."""
        if name not in self.classes:
            raise FashionrecError(f"the kind classifier knows no class {name!r}; it knows {', '.join(self.classes)}")
        return weigh(row, self.classes.index(name), weight)


def mix_of(row: np.ndarray, classes: Sequence[str], min_share: float, max_kinds: int) -> Kinds:
    """Class probabilities ``row`` (one per name of ``classes``) -> the classes given at least ``min_share``, with
    it, most likely first, at most ``max_kinds``."""
    order = [int(i) for i in np.argsort(-row, kind="stable")[:max_kinds] if row[i] >= min_share]
    return tuple((classes[i], round(float(row[i]), 4)) for i in order)


def weigh(row: np.ndarray, index: int, weight: float) -> np.ndarray:
    """Probabilities ``row`` with ``weight`` more on class number ``index``, renormalised."""
    out = np.asarray(row, np.float64).copy()
    out[index] += weight
    return out / out.sum()


def vote(voted: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """The share of ``voted`` (class names; one unknown to ``classes`` counts as ``other``, or for nothing when
    ``classes`` has no ``other``) that each of ``classes`` got; all zeros when nobody voted."""
    index = {name: i for i, name in enumerate(classes)}
    counts = np.zeros(len(classes))
    for name in voted:
        i = index.get(name, index.get(OTHER))
        if i is not None:
            counts[i] += 1
    return counts / counts.sum() if counts.sum() else counts


def blend(row: np.ndarray, votes: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * row + weight * votes``; ``row`` alone when nobody voted."""
    if not votes.sum():
        return np.asarray(row, np.float64)
    return (1.0 - weight) * np.asarray(row, np.float64) + weight * votes


def class_of_values(values: set[str], classes: GarmentClasses) -> str:
    """The garment class sharing most of ``values`` (catalogue values; ties: the class with fewer values, then file
    order), ``other`` when none does."""
    best, score = OTHER, 0.0
    for garment_class in classes.classes:
        shared = len(values & set(garment_class.values))
        if not shared:
            continue
        value = shared + 1.0 / (1 + len(garment_class.values))
        if value > score:
            best, score = garment_class.name, value
    return best


def allot(shares: Sequence[float], k: int) -> list[int]:
    """``k`` places shared out in proportion to ``shares`` (largest remainders; ties to the earlier share)."""
    total = float(sum(shares))
    if k <= 0 or not shares or total <= 0:
        return [0] * len(shares)
    quotas = [k * s / total for s in shares]
    places = [int(q) for q in quotas]
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(quotas[i] - places[i]), i))
    for i in by_remainder[: k - sum(places)]:
        places[i] += 1
    return places


def interleave(lists: Sequence[tuple[int, Sequence[T]]], k: int, key: Callable[[T], object]) -> list[T]:
    """At most ``k`` items: the first ``places`` of each ``(places, items)`` list in turn, then, while places are
    left, the rest of each list in turn (a kind with fewer products leaves its places to the others); an item
    already taken (same ``key``) is skipped."""
    out: list[T] = []
    seen: set[object] = set()
    rest: list[Sequence[T]] = []
    for places, items in lists:
        taken = 0
        for position, item in enumerate(items):
            if taken == places:
                rest.append(items[position:])
                break
            if key(item) not in seen:
                seen.add(key(item))
                out.append(item)
                taken += 1
    for items in rest:
        for item in items:
            if len(out) >= k:
                return out[:k]
            if key(item) not in seen:
                seen.add(key(item))
                out.append(item)
    return out[:k]


def kind_classifier_for(model: Manifest, *, worn: bool = False) -> KindClassifier | None:
    """The shipped kind classifier when ``model`` preprocesses its input as the classifier was trained to read it
    (the shipped fashion model at its input size), else None; with the nearest products' vote when the index
    learnt worn garments (``worn``), else the classifier alone. A damaged file is logged and steering stays off."""
    if model.name != "fashion" or model.weights is not None:
        return None
    try:
        classifier = KindClassifier.open(neighbour_weight=NEIGHBOUR_WEIGHT if worn else 0.0)
    except FashionrecError as exc:
        logger.warning("kind steering is off: %s", exc)
        return None
    if model.name not in classifier.reads or model.image_size != classifier.image_size:
        return None
    return classifier
