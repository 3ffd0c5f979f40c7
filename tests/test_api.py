"""The REST API against a real index of the demo catalogue (FastAPI's TestClient, in process)."""

from __future__ import annotations

import asyncio
import importlib.machinery
import importlib.util
import re
import sys
import types
from collections import Counter
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from fashionrec.api import ApiSettings, create_app
from fashionrec.api.app import WEB_DIR
from fashionrec.recommend import Recommender
from fashionrec.trends import compute_trends
from tests.conftest import DEMO_CATALOG, DEMO_QUERIES, assert_error, demo_rows, upload

QUERY = DEMO_QUERIES / "t-shirt.jpg"


# health, recommend ------------------------------------------------------------------------------------------
def test_healthz_reports_the_loaded_index(demo_client: TestClient) -> None:
    body = demo_client.get("/healthz").json()
    assert body == {"status": "ok", "items": 300, "model": "fashion", "dim": 256, "numerics": "fp32"}


def test_recommend_returns_k_ranked_results_with_metadata_and_image_urls(demo_client: TestClient) -> None:
    response = upload(demo_client, QUERY.read_bytes(), params={"k": 7})
    assert response.status_code == 200, response.text
    body = response.json()
    rows = demo_rows()
    assert body["k"] == 7 and body["filters"] == {}
    assert body["query"] == {"format": "JPEG", "width": 240, "height": 320}
    results = body["results"]
    assert [r["rank"] for r in results] == list(range(1, 8))
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
    assert len({r["id"] for r in results}) == 7
    for r in results:
        assert r["image_url"] == f"/images/{r['id']}"
        assert r["metadata"]["articleType"] == rows[r["id"]]["articleType"]
        assert r["metadata"]["productDisplayName"] == rows[r["id"]]["productDisplayName"]


def test_recommend_applies_filters_inside_the_search(demo_client: TestClient) -> None:
    params = [("k", "10"), ("filter", "gender=Women"), ("filter", "masterCategory=Apparel,Footwear")]
    body = upload(demo_client, QUERY.read_bytes(), params=params).json()
    assert body["filters"] == {"gender": ["Women"], "masterCategory": ["Apparel", "Footwear"]}
    assert len(body["results"]) == 10
    for r in body["results"]:
        assert r["metadata"]["gender"] == "Women"
        assert r["metadata"]["masterCategory"] in {"Apparel", "Footwear"}


def test_a_filter_matching_nothing_gives_an_empty_list(demo_client: TestClient) -> None:
    body = upload(demo_client, QUERY.read_bytes(), params={"filter": "gender=Martians"}).json()
    assert body["results"] == []


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({"filter": "fabric=silk"}, 400, "unknown filter column 'fabric'"),
        ({"filter": "gender"}, 400, "expected KEY=VALUE"),
        ({"k": "0"}, 422, "query.k"),
        ({"k": "1001"}, 422, "query.k"),
        ({"k": "many"}, 422, "query.k"),
    ],
)
def test_bad_query_parameters_are_4xx_json(demo_client: TestClient, params: dict, status: int, fragment: str) -> None:
    assert_error(upload(demo_client, QUERY.read_bytes(), params=params), status, fragment)
    assert_error(demo_client.get("/api/items/1548/similar", params=params), status, fragment)


# items, similar, images -------------------------------------------------------------------------------------
def test_item_returns_its_catalogue_row(demo_client: TestClient) -> None:
    body = demo_client.get("/api/items/1548").json()
    row = demo_rows()["1548"]
    assert body["id"] == "1548" and body["image_url"] == "/images/1548"
    assert body["metadata"] == {k: v for k, v in row.items() if k != "id"}


def test_similar_excludes_the_item_and_honours_filters(demo_client: TestClient) -> None:
    body = demo_client.get("/api/items/1548/similar", params={"k": 5, "filter": "subCategory=Shoes"}).json()
    assert body["item"]["id"] == "1548"
    ids = [r["id"] for r in body["results"]]
    assert len(ids) == 5 and "1548" not in ids
    assert {r["metadata"]["subCategory"] for r in body["results"]} == {"Shoes"}


def test_unknown_items_are_404(demo_client: TestClient) -> None:
    assert_error(demo_client.get("/api/items/nope"), 404, "unknown item id 'nope'")
    assert_error(demo_client.get("/api/items/nope/similar"), 404, "unknown item id")
    assert_error(demo_client.get("/images/nope"), 404, "unknown item id")


def test_images_are_served_by_id_only(demo_client: TestClient) -> None:
    response = demo_client.get("/images/1548")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content == (DEMO_CATALOG / "images" / "1548.jpg").read_bytes()
    for sneaky in ("..%2F..%2Fstyles.csv", "%2Fetc%2Fpasswd", "1548.jpg"):
        assert demo_client.get(f"/images/{sneaky}").status_code == 404


# facets, trends ---------------------------------------------------------------------------------------------
def test_facets_count_the_catalogue(demo_client: TestClient) -> None:
    body = demo_client.get("/api/facets").json()
    facets = {f["column"]: {v["value"]: v["count"] for v in f["values"]} for f in body["facets"]}
    rows = demo_rows().values()
    assert body["items"] == 300
    assert facets["gender"] == dict(Counter(r["gender"] for r in rows))
    assert facets["articleType"] == dict(Counter(r["articleType"] for r in rows))
    assert "productDisplayName" in body["other_columns"] and "productDisplayName" not in facets
    assert body["roles"] == {"label": "articleType", "colour": "baseColour", "name": "productDisplayName",
                             "aux": ["subCategory", "gender"]}


def test_a_shops_facets_name_its_own_columns_and_consensus_votes_on_its_label(shop_index: tuple[Path, Path]) -> None:
    shop, index_dir = shop_index
    with Recommender.open(index_dir) as rec:
        client = TestClient(create_app(rec, settings=ApiSettings()))
        roles = client.get("/api/facets").json()["roles"]
        assert roles == {"label": "category", "colour": "colour", "name": "title", "aux": []}
        photo = (shop / "photos" / "SK-1548.jpg").read_bytes()
        voted = upload(client, photo, params={"consensus": "0.5"})
        assert voted.status_code == 200, voted.text
        first = voted.json()["results"][0]
        other = client.get(f"/api/items/{first['id']}/similar", params={"differ": roles["colour"]})
        assert other.status_code == 200, other.text
        assert all(r["metadata"]["colour"] != first["metadata"]["colour"] for r in other.json()["results"])
        assert client.get(f"/api/items/{first['id']}/similar", params={"differ": "baseColour"}).status_code == 400


def test_trends_endpoint_serves_compute_trends(demo_client: TestClient, demo_recommender: Recommender) -> None:
    assert demo_client.get("/api/trends").json() == compute_trends(demo_recommender.db)


# errors, metrics, concurrency -------------------------------------------------------------------------------
def test_unknown_routes_and_methods_are_json_errors(demo_client: TestClient) -> None:
    assert_error(demo_client.get("/api/nothing-here"), 404, "not found")
    assert_error(demo_client.get("/api/recommend"), 405, "method not allowed")


def test_metrics_count_requests_by_route_template(demo_recommender: Recommender) -> None:
    fresh = TestClient(create_app(demo_recommender))  # its own registry: counts start at zero
    fresh.get("/api/items/1548")
    fresh.get("/api/items/nope")
    fresh.get("/api/items/nope2")
    text = fresh.get("/metrics").text
    assert 'fashionrec_http_requests_total{method="GET",route="/api/items/{item_id}",status="200"} 1.0' in text
    assert 'fashionrec_http_requests_total{method="GET",route="/api/items/{item_id}",status="404"} 2.0' in text
    assert re.search(r'fashionrec_http_request_duration_seconds_count\{method="GET",route="/api/items/\{item_id\}"\} 3\.0', text)
    assert "fashionrec_index_items 300.0" in text
    assert "nope" not in text  # raw paths never become labels


def test_concurrent_requests_get_the_same_answers_as_sequential_ones(demo_app: FastAPI, demo_client: TestClient) -> None:
    photos = [p.read_bytes() for p in sorted(DEMO_QUERIES.glob("*.jpg"))]
    assert len(photos) >= 2
    sequential = [upload(demo_client, p, params={"k": 5}).json()["results"] for p in photos]

    async def all_at_once() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=demo_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            posts = [ac.post("/api/recommend?k=5", files={"file": ("p.jpg", p, "image/jpeg")}) for p in photos * 2]
            return await asyncio.gather(*posts, ac.get("/healthz"), ac.get("/api/items/1548/similar"))

    responses = asyncio.run(all_at_once())
    assert all(r.status_code == 200 for r in responses)
    assert [r.json()["results"] for r in responses[: 2 * len(photos)]] == sequential * 2


# optional text search, CLI ----------------------------------------------------------------------------------
def test_a_search_routes_module_is_included_when_present(demo_recommender: Recommender, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "fashionrec.api.search_routes"
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.router = APIRouter()
    module.router.add_api_route("/api/search", lambda q: {"q": q})
    monkeypatch.setitem(sys.modules, name, module)
    searchable = TestClient(create_app(demo_recommender))
    assert "/api/search" in searchable.get("/openapi.json").json()["paths"]
    assert searchable.get("/api/search", params={"q": "red dress"}).json() == {"q": "red dress"}


def test_serve_without_search_module_does_not_offer_it(
    demo_recommender: Recommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Text search is optional: an install without ``fashionrec.api.search_routes`` serves no /api/search."""
    def paths() -> dict:
        return TestClient(create_app(demo_recommender)).get("/openapi.json").json()["paths"]

    name = "fashionrec.api.search_routes"
    find_spec = importlib.util.find_spec
    assert "/api/search" in paths()  # this checkout has it
    monkeypatch.setattr(importlib.util, "find_spec", lambda module, *args: None if module == name else find_spec(module, *args))
    assert "/api/search" not in paths()


# web page ---------------------------------------------------------------------------------------------------
def test_web_page_and_assets_are_served_with_a_strict_csp(demo_client: TestClient) -> None:
    page = demo_client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page.text
        assert demo_client.get(asset).status_code == 200


def test_web_page_loads_nothing_from_other_hosts() -> None:
    paths = sorted(WEB_DIR.glob("*.*"))
    assert {"index.html", "app.js", "style.css"} <= {p.name for p in paths}  # the loop reads the real page
    for path in paths:
        text = path.read_text(encoding="utf-8")
        external = [url for url in re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text)
                    if not url.startswith("http://www.w3.org/")]  # the SVG namespace name, never fetched
        assert external == [], f"{path.name} refers to {external}"


def test_api_prefer_parameter(trained_index: Path) -> None:
    with Recommender.open(trained_index) as rec:
        client = TestClient(create_app(rec, settings=ApiSettings()))
        item_id = rec.store.ids[5]
        colour = rec.db.get(item_id).metadata["baseColour"]
        answer = client.get(f"/api/items/{item_id}/similar", params={"k": 5, "prefer": f"baseColour={colour}"})
        assert answer.status_code == 200 and len(answer.json()["results"]) == 5
        assert client.get(f"/api/items/{item_id}/similar", params={"prefer": "nope=x"}).status_code == 400
        photo = min(DEMO_QUERIES.glob("*.jpg")).read_bytes()
        answer = client.post("/api/recommend", params={"k": 3, "prefer": "gender=Women"},
                             files={"file": ("p.jpg", photo, "image/jpeg")})
        assert answer.status_code == 200 and len(answer.json()["results"]) == 3


def test_api_consensus_parameter(trained_index: Path) -> None:
    with Recommender.open(trained_index) as rec:
        client = TestClient(create_app(rec, settings=ApiSettings()))
        item_id = rec.store.ids[7]
        answer = client.get(f"/api/items/{item_id}/similar", params={"k": 10, "consensus": 10})
        assert answer.status_code == 200
        assert [r["id"] for r in answer.json()["results"]] == [r.id for r in rec.similar(item_id, 10, consensus=10)]
        assert client.get(f"/api/items/{item_id}/similar", params={"consensus": 11}).status_code == 422
        photo = min(DEMO_QUERIES.glob("*.jpg")).read_bytes()
        answer = client.post("/api/recommend", params={"k": 10, "consensus": 10},
                             files={"file": ("p.jpg", photo, "image/jpeg")})
        kinds = [r["metadata"]["articleType"] for r in answer.json()["results"]]
        assert answer.status_code == 200 and kinds == sorted(kinds, key=lambda t: t != kinds[0])
        rec.consensus_column = "nope"
        answer = client.get(f"/api/items/{item_id}/similar", params={"consensus": 0.5})
        assert answer.status_code == 400 and "consensus column 'nope'" in answer.json()["error"]
        assert client.get(f"/api/items/{item_id}/similar").status_code == 200  # off: the column is not needed
