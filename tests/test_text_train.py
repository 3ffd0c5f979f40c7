"""Training the text alignment (fashionrec.text.train): its seeded product-level holdout is recorded, and its NumPy
projection matches the torch heads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fashionrec.split import holdout_mask
from fashionrec.text import TextSearcher
from fashionrec.text.alignment import Alignment
from fashionrec.text.train import _head, _numpy_layers


@pytest.mark.slow
def test_holdout_is_seeded_product_level_and_recorded(demo_text_index: Path, searcher: TextSearcher) -> None:
    recorded = Alignment.load(demo_text_index).held_out
    ids = searcher.store.ids  # the same products a head trained with this seed and fraction holds out
    assert recorded == sorted(i for i, out in zip(ids, holdout_mask(ids, 0.1, 0), strict=True) if out)
    assert 0.05 * len(ids) < len(recorded) < 0.15 * len(ids)


def test_numpy_projection_matches_the_torch_heads() -> None:
    torch.manual_seed(0)
    head = _head(12, 8, 4)
    x = np.random.default_rng(0).normal(size=(5, 12)).astype(np.float32)
    alignment = Alignment({"image": _numpy_layers(head), "text": _numpy_layers(_head(3, 0, 4))})
    expected = torch.nn.functional.normalize(head(torch.from_numpy(x)), dim=1).detach().numpy()
    np.testing.assert_allclose(alignment.project("image", x), expected, atol=1e-5)
