"""Ranking metrics, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fashionrec.evaluate import ranking_metrics


def test_ranking_metrics_by_hand() -> None:
    m = ranking_metrics([True, False, True, False, False, False, False, False, False, False], n_relevant=2)
    assert m["P@1"] == 1 and m["P@5"] == pytest.approx(0.4) and m["hit@5"] == 1
    assert m["mAP@10"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["nDCG@10"] == pytest.approx((1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3)))
    assert ranking_metrics([False] * 10, n_relevant=3)["mAP@10"] == 0
