"""Shoppers steer a query: a crop box on the photo, liked / disliked products, and "the same, but another X".

* **Crop** (``box``): ``x, y, w, h`` in pixels, or in fractions of the width and height when all four values are
  at most 1 (``0.25,0.1,0.5,0.6``). The box must lie inside the image and have an area; the query embeds only that
  region (and is not localised again: the shopper already pointed at the garment).
* **Relevance feedback** (``like`` / ``unlike``: catalogue product ids). Two ways to turn examples into a ranking:

  - ``"rocchio"``: move the query toward the liked products and away from the disliked ones,
    ``q' = ALPHA * q + BETA * mean(liked) - GAMMA * mean(disliked)``, renormalised, then search as usual;
  - ``"contrast"``: gather candidates near the query and near each liked product, score each by its best
    similarity to the query or a liked product minus ``NEGATIVE_WEIGHT`` times its best similarity to a disliked
    product, and keep the top k.

  Which one ranks better is measured by ``benchmarks/feedback.py`` (docs/steering.md); the better
  one is the default (``DEFAULT_METHOD``). Either way
  the examples themselves never come back, and one liked product alone (no photo) asks exactly what "more like
  this" asks for it.
* **Differ** (``differ="baseColour"``): the most similar products whose value in that column differs from the
  reference product's: the complement of the reference's values becomes an ordinary filter, so it acts inside the
  vector search and k results still come back.

Nothing here keeps state: every call carries all of the shopper's choices.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from fashionrec.errors import FashionrecError

Box = tuple[float, float, float, float]
MAX_EXAMPLES = 20
"""At most this many liked and this many disliked products per query."""
METHODS = ("rocchio", "contrast")
DEFAULT_METHOD = "contrast"
"""The method that ranked better with the simulated shopper of ``benchmarks/feedback.py``."""
# Chosen with the simulated shopper on clothing-photos/validation only (the benchmark reports test photos and
# held-out catalogue products).
ALPHA, BETA, GAMMA = 1.0, 1.0, 0.5
NEGATIVE_WEIGHT = 0.5
_NUMBER = r"\s*[0-9]+(?:\.[0-9]*)?\s*"
BOX_PATTERN = rf"^{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}$"


class UnknownExampleError(FashionrecError):
    """A liked or disliked product id that is not in the index."""


class BoxError(FashionrecError):
    """A crop box that is malformed, outside the image or without area."""


@dataclass(frozen=True)
class Examples:
    """Validated feedback: liked and disliked product ids, each list without repeats, in the order given."""

    like: tuple[str, ...] = ()
    unlike: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.like or self.unlike)

    @property
    def ids(self) -> set[str]:
        return set(self.like) | set(self.unlike)


def check_examples(like: Iterable[str] | None, unlike: Iterable[str] | None) -> Examples:
    """Deduplicate and check ``like`` / ``unlike`` (not a bare string, at most MAX_EXAMPLES each, disjoint)."""
    lists = []
    for name, ids in (("like", like), ("unlike", unlike)):
        if isinstance(ids, str):
            raise FashionrecError(f"{name} must be a list of product ids, not one string")
        unique = tuple(dict.fromkeys(str(i) for i in ids or ()))
        if len(unique) > MAX_EXAMPLES:
            raise FashionrecError(f"{name} names {len(unique)} products; at most {MAX_EXAMPLES} are allowed")
        if any(not i for i in unique):
            raise FashionrecError(f"{name} contains an empty product id")
        lists.append(unique)
    both = set(lists[0]) & set(lists[1])
    if both:
        raise FashionrecError(f"product {min(both)!r} is in both like and unlike")
    return Examples(*lists)


def check_method(method: str) -> str:
    if method not in METHODS:
        raise FashionrecError(f"feedback method must be one of {', '.join(METHODS)}, got {method!r}")
    return method


# crop ---------------------------------------------------------------------------------------------------------
def parse_box(box: str | Sequence[float]) -> Box:
    """``"x,y,w,h"`` or four numbers -> a box (not yet checked against an image)."""
    if isinstance(box, str):
        if not re.match(BOX_PATTERN, box):
            raise BoxError(f"box must be x,y,w,h (four non-negative numbers), got {box!r}")
        values = [float(v) for v in box.split(",")]
    else:
        try:
            values = [float(v) for v in box]
        except (TypeError, ValueError):
            raise BoxError(f"box must be four numbers x, y, w, h, got {box!r}") from None
    if len(values) != 4 or not all(math.isfinite(v) and v >= 0 for v in values):
        raise BoxError(f"box must be four non-negative numbers x, y, w, h, got {box!r}")
    x, y, w, h = values
    return x, y, w, h


def box_pixels(box: str | Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """The box as a pixel rectangle ``(left, top, right, bottom)`` of a ``width`` x ``height`` image; fractions
    when every value is at most 1. Raises :class:`BoxError` when it has no area or leaves the image."""
    x, y, w, h = parse_box(box)
    if w <= 0 or h <= 0:
        raise BoxError(f"box has zero area (w={w:g}, h={h:g})")
    if max(x, y, w, h) <= 1:
        if x + w > 1 + 1e-6 or y + h > 1 + 1e-6:
            raise BoxError(f"box {x:g},{y:g},{w:g},{h:g} (fractions) reaches outside the image")
        x, w, y, h = x * width, w * width, y * height, h * height
    elif x + w > width + 1e-6 or y + h > height + 1e-6:
        raise BoxError(f"box {x:g},{y:g},{w:g},{h:g} reaches outside the {width}x{height} image")
    left, top = min(round(x), width - 1), min(round(y), height - 1)
    right, bottom = min(max(round(x + w), left + 1), width), min(max(round(y + h), top + 1), height)
    return left, top, right, bottom


def crop(image: Image.Image, box: str | Sequence[float]) -> Image.Image:
    """The region of ``image`` inside ``box`` (see :func:`box_pixels`)."""
    return image.crop(box_pixels(box, image.width, image.height))


# relevance feedback -------------------------------------------------------------------------------------------
def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def rocchio(query: np.ndarray | None, liked: np.ndarray, disliked: np.ndarray) -> np.ndarray:
    """``ALPHA * query + BETA * mean(liked) - GAMMA * mean(disliked)``, unit length (rows of ``liked`` /
    ``disliked`` are unit vectors; either may be empty, ``query`` may be None when the examples are the query)."""
    moved = np.zeros(liked.shape[1] if query is None else query.shape[0], dtype=np.float32)
    if query is not None:
        moved += ALPHA * query
    if len(liked):
        moved += BETA * liked.mean(axis=0)
    if len(disliked):
        moved -= GAMMA * disliked.mean(axis=0)
    return _unit(moved).astype(np.float32)


def contrast_scores(candidates: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """Per candidate row: best cosine to a positive (the query and the liked products) minus ``NEGATIVE_WEIGHT``
    times the best cosine to a disliked product."""
    score = (candidates @ positives.T).max(axis=1)
    if len(negatives):
        score = score - NEGATIVE_WEIGHT * (candidates @ negatives.T).max(axis=1)
    return score
