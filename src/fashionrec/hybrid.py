"""Hybrid ranking: image similarity plus agreement with soft metadata preferences.

A filter (``--filter gender=Women``) removes every other product; a preference (``--prefer gender=Women``) only
moves agreeing products up, so a visually much closer product can still win. The vector store proposes a larger
pool (``POOL_FACTOR`` x k) by image similarity and this module re-ranks it by

    score = cosine + weight * (share of the preferred columns the product agrees with)

The default weight is the one that measured best on held-out catalogue queries (benchmarks/quality.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from fashionrec.config import env_default
from fashionrec.errors import FashionrecError

if TYPE_CHECKING:
    from fashionrec.recommend import Result

POOL_FACTOR = 5
MIN_POOL = 50
Preferences = dict[str, str]


def default_weight() -> float:
    """``FASHIONREC_HYBRID_WEIGHT`` or the measured default."""
    return parse_weight(env_default("FASHIONREC_HYBRID_WEIGHT"))


def parse_weight(value: str | float) -> float:
    try:
        weight = float(value)
    except ValueError:
        raise FashionrecError(f"hybrid weight must be a number, got {value!r}") from None
    if not 0 <= weight <= 10:
        raise FashionrecError(f"hybrid weight must be between 0 and 10, got {weight}")
    return weight


def parse_preferences(specs: Iterable[str], columns: Sequence[str]) -> Preferences:
    """``KEY=VALUE`` strings -> preferences, checked against the index's columns (one value per column)."""
    out: Preferences = {}
    for spec in specs:
        key, sep, value = (part.strip() for part in spec.partition("="))
        if not sep or not key or not value:
            raise FashionrecError(f"bad preference {spec!r}: expected KEY=VALUE")
        out[key] = value
    return check_preferences(out, columns)


def check_preferences(prefer: Mapping[str, str] | None, columns: Sequence[str]) -> Preferences:
    if not prefer:
        return {}
    unknown = [key for key in prefer if key not in columns]
    if unknown:
        raise FashionrecError(f"unknown preference column {unknown[0]!r}; columns: {', '.join(columns)}")
    return {str(k): str(v) for k, v in prefer.items()}


def pool_size(k: int) -> int:
    """How many image-similarity candidates a hybrid query re-ranks."""
    return max(k * POOL_FACTOR, MIN_POOL)


def agreement(metadata: Mapping[str, str], prefer: Mapping[str, str]) -> float:
    """Share of the preferred columns whose value the product has (0..1)."""
    return sum(metadata.get(key) == value for key, value in prefer.items()) / len(prefer)


def rerank(results: Sequence[Result], prefer: Mapping[str, str], weight: float, k: int) -> list[Result]:
    """The top k of ``results`` by cosine + weight * agreement; the returned scores are the combined ones."""
    from fashionrec.recommend import Result

    scored = [Result(r.id, r.score + weight * agreement(r.metadata, prefer), r.metadata) for r in results]
    return sorted(scored, key=lambda r: -r.score)[:k]
