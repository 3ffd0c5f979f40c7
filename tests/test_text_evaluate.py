"""Text search metrics on a hand-made ranking."""

from __future__ import annotations

import numpy as np

from fashionrec.text.evaluate import precision_at, ranks, recall_mrr


def test_metrics_on_a_hand_made_ranking() -> None:
    gallery = np.eye(3, dtype=np.float32)
    queries = np.array([[1, 0.5, 0], [0.2, 1, 0]], dtype=np.float32)
    rank = ranks(queries, gallery, [{1}, {0, 1}])
    assert rank.tolist() == [2, 1]
    assert recall_mrr(rank) == {"recall@1": 0.5, "recall@10": 1.0, "mrr": 0.75}
    assert precision_at(queries, gallery, ["a", "b", "a"], ["a", "b"], k=2) == 0.5  # top 2 of each: rows 0 and 1
