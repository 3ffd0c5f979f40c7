"""Hybrid ranking: image similarity plus agreement with metadata.

A filter (``--filter gender=Women``) removes every other product; a preference (``--prefer gender=Women``) only
moves agreeing products up, so a visually much closer product can still win. The vector store proposes a larger
pool (``POOL_FACTOR`` x k) by image similarity and this module re-ranks it by

    score = cosine + weight * (share of the preferred columns the product agrees with)
                   + consensus * (the neighbours' vote for the product's label)

The vote (``--consensus``) is what the nearest ``CONSENSUS_NEIGHBOURS`` candidates say the query is: each one
votes for its own value of the consensus column (the index's label column: articleType for Myntra) with ``exp((cosine - best cosine) / T)``, and a
product's term is the share of the votes its value got. It turns "five products that look alike" into "five
products of the kind the query most likely is", which raises P@5 on held-out catalogue queries
at the cost of variety: when the vote is wrong, all five are wrong (measured in docs/quality.md). So it is off by default, for pages like "more like this product" to turn on.

The default weights are the ones that measured best on held-out catalogue queries (benchmarks/quality.py); the
vote's constants were chosen on 1,000 held-out queries disjoint from the 1,000 the benchmark reports.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from fashionrec.errors import FashionrecError
from fashionrec.result import Result

POOL_FACTOR = 5
MIN_POOL = 50
CONSENSUS_NEIGHBOURS = 20
CONSENSUS_TEMPERATURE = 0.02
Preferences = dict[str, str]




def parse_weight(value: str | float, what: str = "hybrid weight") -> float:
    try:
        weight = float(value)
    except ValueError:
        raise FashionrecError(f"{what} must be a number, got {value!r}") from None
    if not 0 <= weight <= 10:
        raise FashionrecError(f"{what} must be between 0 and 10, got {weight}")
    return weight


def check_consensus_column(column: str, columns: Sequence[str]) -> str:
    if column not in columns:
        raise FashionrecError(f"consensus column {column!r} is not in the index; columns: {', '.join(columns)}")
    return column


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


def consensus_shares(results: Sequence[Result], column: str) -> dict[str, float]:
    """Each value of ``column`` -> its share of the similarity-weighted votes of the nearest
    ``CONSENSUS_NEIGHBOURS`` of ``results`` (ranked by cosine, best first); products without a value do not vote."""
    votes: defaultdict[str, float] = defaultdict(float)
    for r in results[:CONSENSUS_NEIGHBOURS]:
        if r.metadata.get(column):
            votes[r.metadata[column]] += math.exp((r.score - results[0].score) / CONSENSUS_TEMPERATURE)
    total = sum(votes.values())
    return {value: vote / total for value, vote in votes.items()}


def rerank(
    results: Sequence[Result], k: int, *, prefer: Mapping[str, str] | None = None, weight: float = 0.0,
    consensus: float = 0.0, column: str = "articleType",
) -> list[Result]:
    """The top k of ``results`` (ranked by cosine) by cosine + weight * agreement with ``prefer`` + consensus *
    the neighbours' vote for the product's ``column``; the returned scores are the combined ones."""

    shares = consensus_shares(results, column) if consensus else {}

    def score(r: Result) -> float:
        preferred = weight * agreement(r.metadata, prefer) if prefer else 0.0
        return r.score + preferred + consensus * shares.get(r.metadata.get(column, ""), 0.0)

    return sorted((Result(r.id, score(r), r.metadata) for r in results), key=lambda r: -r.score)[:k]
