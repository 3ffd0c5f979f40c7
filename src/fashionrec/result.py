"""``Result``: one recommended product, the value every ranking step passes on (a leaf module: no imports from
the rest of fashionrec, so ranking helpers and the recommender can both use it without a cycle)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Result:
    """One recommended product."""

    id: str
    score: float
    metadata: dict[str, str]
    photo: int = 0
    """Which of the product's photos matched best (0: its first or only one)."""

    def to_dict(self) -> dict[str, Any]:
        """Flat form used by ``--json`` and the API: id, score, the photo that matched when it is not the first,
        then every metadata column."""
        photo = {"photo": self.photo} if self.photo else {}
        return {"id": self.id, "score": round(self.score, 6), **photo, **self.metadata}
