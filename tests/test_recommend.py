"""Opening an index for recommendations: vectors and head must agree, damaged or foreign files are clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fashionrec.errors import IndexFormatError
from fashionrec.head import Head
from fashionrec.indexing import index_catalog
from fashionrec.recommend import Recommender
from tests.conftest import FAST_MODEL


def test_open_refuses_vectors_published_with_another_head(
    trained_index: Path, tmp_path: Path, catalog_120: Path
) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(trained_index, index_dir)
    other = Head.load(index_dir)
    other.weights["b2"] = other.weights["b2"] + 1
    other.save(index_dir)  # a new head whose vectors were never published (train killed between the two writes)
    with pytest.raises(IndexFormatError, match="re-run `fashionrec index`"):
        Recommender.open(index_dir)
    index_catalog(catalog_120, index_dir, model=FAST_MODEL, progress=False)  # nothing to embed; re-publishes
    with Recommender.open(index_dir) as rec:
        assert rec.store.model["head"] == other.fingerprint
