"""GET /api/search (text search over HTTP) on the demo catalogue with a small alignment; a clear 404 without one."""

from __future__ import annotations

from pathlib import Path

import pytest

from fashionrec.recommend import Recommender
from fashionrec.text import MAX_QUERY_CHARS, TextSearcher

fastapi_testclient = pytest.importorskip("fastapi.testclient")


@pytest.fixture(scope="module")
def client(demo_text_index: Path) -> object:
    from fashionrec.api import create_app

    with Recommender.open(demo_text_index) as rec:
        yield fastapi_testclient.TestClient(create_app(rec))


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
