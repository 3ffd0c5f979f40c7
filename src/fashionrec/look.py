"""Shop the look: what :meth:`fashionrec.recommend.Recommender.look` answers for a photo of a whole outfit.

Each garment the localiser finds (:mod:`fashionrec.garments`) is cropped with a margin, embedded, and searched on its
own, steered to its class's catalogue values (``garments.json``: a skirt is searched among skirts) unless the caller
already filters that column. Where the kind classifier reads the index's model (:mod:`fashionrec.kinds`), it gives a
second opinion on each crop: a garment whose class it finds unlikely (under ``MIN_AGREEMENT`` of its probability) is
left out, and the places of the others are shared as a plain query's are, among the localiser's class, counted
``LOCALISER_WEIGHT`` times the classifier's whole opinion, and the classes the classifier adds (a "top" that may be a
sweater gets a sweater or two). Pure pieces here; the recommender runs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fashionrec.filters import Filters
from fashionrec.garments import XYWH, GarmentClasses
from fashionrec.result import Result

CROP_MARGIN = 0.1  # share of a garment box's width and height added on each side before it is embedded
MAX_GARMENTS = 6
LOCALISER_WEIGHT = 1.0  # the localiser's class against the kind classifier's view of the crop (which sums to 1)
MIN_AGREEMENT = 0.05  # a garment whose class the kind classifier gives less probability than this is left out


@dataclass(frozen=True)
class LookGarment:
    """One garment of a look: its class, box ``(x, y, w, h)`` in the photo's pixels, the localiser's confidence,
    and the products found for it."""

    label: str
    box: XYWH
    score: float
    results: list[Result]

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "box": list(self.box), "score": round(self.score, 4),
                "results": [r.to_dict() for r in self.results]}


def steered(filters: Filters, classes: GarmentClasses, labels: str | Sequence[str],
            columns: Mapping[str, Any] | Sequence[str]) -> Filters:
    """``filters`` with the values of the garment class(es) ``labels`` on the class file's column, unless the caller
    already filters that column (their choice wins), the catalogue has no such column, or ``labels`` is empty."""
    names = [labels] if isinstance(labels, str) else list(labels)
    if not names or classes.column not in columns or classes.column in filters:
        return filters
    return {**filters, classes.column: frozenset(v for name in names for v in classes.values(name))}
