"""Hybrid ranking (preferred metadata) and consensus re-ranking, by hand and on a small trained index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fashionrec.errors import FashionrecError
from fashionrec.hybrid import CONSENSUS_TEMPERATURE, consensus_shares, rerank
from fashionrec.recommend import MAX_K, Recommender, Result


def test_hybrid_moves_preferred_products_up_and_weight_zero_is_image_only(trained_index: Path) -> None:
    with Recommender.open(trained_index) as rec:
        item_id = rec.store.ids[5]
        rec.hybrid_weight = 0
        plain = rec.similar(item_id, k=10)
        colour = plain[-1].metadata["baseColour"]
        rec.hybrid_weight = 0.1
        assert [r.id for r in rec.similar(item_id, k=10, prefer={})] == [r.id for r in plain]
        rec.hybrid_weight = 5
        preferred = rec.similar(item_id, k=10, prefer={"baseColour": colour})
        agreeing = [r.metadata["baseColour"] == colour for r in preferred]
        assert agreeing == sorted(agreeing, reverse=True)  # every agreeing product ranks above every other
        assert sum(agreeing) >= sum(r.metadata["baseColour"] == colour for r in plain)
        with pytest.raises(FashionrecError, match="unknown preference column"):
            rec.similar(item_id, prefer={"nope": "x"})


def test_hybrid_reranks_even_when_k_is_the_whole_pool(trained_index: Path) -> None:
    """k = MAX_K makes the pool no larger than k; the preferences must still re-rank it."""
    with Recommender.open(trained_index) as rec:
        rec.hybrid_weight = 5
        item_id = rec.store.ids[5]
        colour = rec.similar(item_id, k=10)[-1].metadata["baseColour"]
        ranked = rec.similar(item_id, k=MAX_K, prefer={"baseColour": colour})
        agreeing = [r.metadata["baseColour"] == colour for r in ranked]
        assert len(agreeing) == len(rec) - 1 and agreeing == sorted(agreeing, reverse=True)


def test_consensus_shares_and_rerank_by_hand() -> None:
    def result(item_id: str, score: float, kind: str) -> Result:
        return Result(item_id, score, {"articleType": kind} if kind else {})

    pool = [result("a1", 0.90, "A"), result("b1", 0.89, "B"), result("b2", 0.88, "B"), result("x", 0.875, ""),
            result("b3", 0.87, "B"), result("a2", 0.50, "A")]
    shares = consensus_shares(pool, "articleType")
    vote_b = sum(np.exp((s - 0.90) / CONSENSUS_TEMPERATURE) for s in (0.89, 0.88, 0.87))
    vote_a = 1 + np.exp(-0.40 / CONSENSUS_TEMPERATURE)
    assert shares == pytest.approx({"A": vote_a / (vote_a + vote_b), "B": vote_b / (vote_a + vote_b)})
    assert [r.id for r in rerank(pool, 6, consensus=0.0)] == [r.id for r in pool]
    top = rerank(pool, 4, consensus=1.0)
    assert [r.id for r in top] == ["b1", "b2", "b3", "a1"]  # the majority kind first, in image order
    assert top[0].score == pytest.approx(0.89 + shares["B"])
    assert [r.id for r in rerank(pool, 2, consensus=1.0, column="nope")] == ["a1", "b1"]  # no votes: image order


def test_consensus_puts_the_neighbours_kind_first_and_zero_is_image_only(trained_index: Path) -> None:
    with Recommender.open(trained_index) as rec:
        item_id = rec.store.ids[7]
        plain = rec.similar(item_id, k=len(rec) - 1)
        shares = consensus_shares(plain, "articleType")
        winner = max(shares, key=shares.__getitem__)
        assert 0 < shares[winner] < 1  # the vote is not unanimous, so there is something to re-rank
        rec.consensus_weight = 10
        voted = rec.similar(item_id, k=20)
        of_winner = [r.id for r in plain if r.metadata["articleType"] == winner]
        assert [r.id for r in voted[: len(of_winner)]] == of_winner[:20]  # the voted kind first, in image order
        rec.consensus_weight = 0
        assert [r.id for r in rec.similar(item_id, k=20)] == [r.id for r in plain[:20]]
