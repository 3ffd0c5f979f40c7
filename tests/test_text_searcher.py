"""The text searcher: described products found, filters inside the search, bad queries refused, and
indexes without an alignment or with vectors of other heads refused; on the demo catalogue with a small alignment
trained once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fashionrec.errors import FashionrecError, IndexFormatError
from fashionrec.recommend import Result
from fashionrec.text import MAX_QUERY_CHARS, TextSearcher
from fashionrec.text.alignment import Alignment


@pytest.mark.parametrize(("query", "article_type"), [("watch", "Watches"), ("sunglasses", "Sunglasses"),
                                                      ("handbag", "Handbags")])
def test_search_finds_the_described_products(searcher: TextSearcher, query: str, article_type: str) -> None:
    results = searcher.search(query, k=5)
    assert all(isinstance(r, Result) for r in results) and len(results) == 5
    assert [r.metadata["articleType"] for r in results].count(article_type) >= 4
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_filters_act_inside_the_search(searcher: TextSearcher) -> None:
    results = searcher.search("shoes", k=10, filters={"gender": ["Women"], "masterCategory": ["Footwear"]})
    assert len(results) == 10
    assert {(r.metadata["gender"], r.metadata["masterCategory"]) for r in results} == {("Women", "Footwear")}
    with pytest.raises(FashionrecError, match="unknown filter column"):
        searcher.search("shoes", filters={"colour": ["Red"]})


@pytest.mark.parametrize("query", ["", "   ", "x" * (MAX_QUERY_CHARS + 1)])
def test_bad_queries_are_user_errors(searcher: TextSearcher, query: str) -> None:
    with pytest.raises(FashionrecError, match="search text"):
        searcher.search(query)


def test_index_without_text_search_says_what_to_run(demo_index: Path) -> None:
    with pytest.raises(IndexFormatError, match="train-text"):
        TextSearcher.open(demo_index)


def test_vectors_of_other_heads_are_refused(demo_text_index: Path, tmp_path: Path) -> None:
    copy = tmp_path / "index"
    shutil.copytree(demo_text_index, copy)
    alignment = Alignment.load(copy)
    alignment.header["temperature"] = 1.0  # other heads, same shape: the saved text vectors no longer match
    alignment.save(copy)
    with pytest.raises(IndexFormatError, match="do not match"):
        TextSearcher.open(copy)
