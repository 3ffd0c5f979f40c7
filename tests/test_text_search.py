"""Text search (issue 8): the trained alignment, its artifact, `train-text`/`search` on the command line, the
Python API and `GET /api/search`, on the demo catalogue with a small alignment trained once per session."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fashionrec.cli import main
from fashionrec.errors import FashionrecError, IndexFormatError
from fashionrec.recommend import Recommender, Result
from fashionrec.split import holdout_mask
from fashionrec.text import MAX_QUERY_CHARS, TextSearcher
from fashionrec.text.alignment import Alignment, alignment_path
from fashionrec.text.captions import captions, product_name
from fashionrec.text.evaluate import precision_at, ranks, recall_mrr
from fashionrec.text.train import _head, _numpy_layers

fastapi_testclient = pytest.importorskip("fastapi.testclient")


@pytest.fixture(scope="module")
def searcher(demo_text_index: Path) -> TextSearcher:
    with TextSearcher.open(demo_text_index) as opened:
        yield opened


@pytest.fixture(scope="module")
def client(demo_text_index: Path) -> object:
    from fashionrec.api import create_app

    with Recommender.open(demo_text_index) as rec:
        yield fastapi_testclient.TestClient(create_app(rec))


# the alignment ------------------------------------------------------------------------------------------------
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


def test_artifact_round_trips_and_damage_is_an_index_format_error(demo_text_index: Path, tmp_path: Path) -> None:
    original = Alignment.load(demo_text_index)
    original.save(tmp_path)
    assert Alignment.load(tmp_path).checksum == original.checksum
    path = alignment_path(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError):
        Alignment.load(tmp_path)
    path.write_bytes(b"not an npz")
    with pytest.raises(IndexFormatError, match="train-text"):
        Alignment.load(tmp_path)


def test_captions_fill_templates_from_metadata() -> None:
    meta = {"gender": "Women", "articleType": "Dresses", "baseColour": "Red", "subCategory": "Dress",
            "usage": "Casual", "season": "Summer", "productDisplayName": "Femella Women Red Dress"}
    assert "red dresses for women" in captions(meta) and "casual dresses for summer" in captions(meta)
    assert captions({"articleType": "Dresses", "baseColour": ""}) == []
    assert product_name({"articleType": "Dresses", "productDisplayName": " "}) == "Dresses"


def test_metrics_on_a_hand_made_ranking() -> None:
    gallery = np.eye(3, dtype=np.float32)
    queries = np.array([[1, 0.5, 0], [0.2, 1, 0]], dtype=np.float32)
    rank = ranks(queries, gallery, [{1}, {0, 1}])
    assert rank.tolist() == [2, 1]
    assert recall_mrr(rank) == {"recall@1": 0.5, "recall@10": 1.0, "mrr": 0.75}
    assert precision_at(queries, gallery, ["a", "b", "a"], ["a", "b"], k=2) == 0.5  # top 2 of each: rows 0 and 1


# Python API ---------------------------------------------------------------------------------------------------
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


# command line -------------------------------------------------------------------------------------------------
def test_cli_search_json_and_table(demo_text_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "watch", "--index-dir", str(demo_text_index), "-k", "3", "--json",
                 "--filter", "gender=Men"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["query"] == "watch" and len(answer["results"]) == 3
    assert {r["gender"] for r in answer["results"]} == {"Men"} and {r["articleType"] for r in answer["results"]} == {"Watches"}
    assert main(["search", "watch", "--index-dir", str(demo_text_index), "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "watch:" and len(lines) == 3 and lines[1].lstrip().startswith("1.")


@pytest.mark.parametrize(("args", "message"), [
    (["  "], "search text is empty"),
    (["watch", "--filter", "colour=Red"], "unknown filter column"),
    (["watch", "-k", "0"], "k must be between"),
])
def test_cli_mistakes_are_one_line_and_exit_2(demo_text_index: Path, capsys: pytest.CaptureFixture[str],
                                              args: list[str], message: str) -> None:
    assert main(["search", *args, "--index-dir", str(demo_text_index)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_search_without_alignment(demo_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "watch", "--index-dir", str(demo_index)]) == 2
    assert "fashionrec train-text" in capsys.readouterr().err


# HTTP API -----------------------------------------------------------------------------------------------------
def test_api_search(client: object, searcher: TextSearcher) -> None:
    response = client.get("/api/search", params={"q": " sunglasses ", "k": 4, "filter": "gender=Men"})
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == "sunglasses" and body["k"] == 4 and body["filters"] == {"gender": ["Men"]}
    expected = searcher.search("sunglasses", k=4, filters={"gender": ["Men"]})
    assert [r["id"] for r in body["results"]] == [r.id for r in expected]
    assert body["results"][0]["image_url"] == f"/images/{expected[0].id}" and body["results"][0]["rank"] == 1
    assert "/api/search" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(("params", "status", "message"), [
    ({}, 422, "q"),
    ({"q": ""}, 422, "q"),
    ({"q": "   "}, 400, "search text is empty"),
    ({"q": "x" * (MAX_QUERY_CHARS + 1)}, 422, "q"),
    ({"q": "watch", "k": 0}, 422, "k"),
    ({"q": "watch", "filter": "colour=Red"}, 400, "unknown filter column"),
])
def test_api_bad_input_is_a_4xx_json_error(client: object, params: dict[str, object], status: int,
                                           message: str) -> None:
    response = client.get("/api/search", params=params)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_api_without_alignment_is_a_clear_404(demo_index: Path) -> None:
    from fashionrec.api import create_app

    with Recommender.open(demo_index) as rec:
        response = fastapi_testclient.TestClient(create_app(rec)).get("/api/search", params={"q": "watch"})
    assert response.status_code == 404 and "train-text" in response.json()["error"]
