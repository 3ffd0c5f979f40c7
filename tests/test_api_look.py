"""``POST /api/look``: the garments of an uploaded outfit photo, each with products shaped as ``/api/recommend``'s;
the same upload limits, filters and errors; documented in ``/openapi.json`` and counted in ``/metrics``; and served
by a real ``fashionrec serve`` process to a real socket client."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fashionrec.api import ApiSettings, create_app
from fashionrec.garments import load_classes
from fashionrec.recommend import MAX_K, Recommender
from tests.conftest import STREET_PHOTO, ServeProcess, assert_error, form, upload

STREET = STREET_PHOTO.read_bytes()


def look(client: TestClient, data: bytes = STREET, params: dict | list | None = None) -> httpx.Response:
    return client.post("/api/look", params=params, files={"file": ("street.jpg", data, "image/jpeg")})


def test_look_answers_the_garments_with_results_shaped_as_recommend(demo_client: TestClient) -> None:
    response = look(demo_client, params={"k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    width, height = Image.open(STREET_PHOTO).size
    assert set(body) == {"k", "filters", "query", "garments"}
    assert body["k"] == 3 and body["filters"] == {}
    assert body["query"] == {"format": "JPEG", "width": width, "height": height}
    garments = body["garments"]
    assert len(garments) >= 2
    assert [g["score"] for g in garments] == sorted((g["score"] for g in garments), reverse=True)
    recommended = upload(demo_client, STREET, params={"k": 3}).json()["results"][0]
    classes = load_classes()
    for garment in garments:
        assert set(garment) == {"label", "box", "score", "results"} and garment["label"] in classes.names
        x, y, w, h = garment["box"]
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= width and y + h <= height
        assert [r["rank"] for r in garment["results"]] == [1, 2, 3]
        for result in garment["results"]:
            assert set(result) == set(recommended)  # id, rank, score, image_url, metadata, photo
            assert result["image_url"] == f"/images/{result['id']}"
            assert result["metadata"]["articleType"] in classes.values(garment["label"])
        scores = [r["score"] for r in garment["results"]]
        assert scores == sorted(scores, reverse=True)


def test_look_is_what_the_recommender_answers(demo_client: TestClient, demo_recommender: Recommender) -> None:
    body = look(demo_client, params={"k": 4}).json()
    expected = demo_recommender.look(STREET_PHOTO, k=4)
    assert [(g["label"], tuple(g["box"])) for g in body["garments"]] == [(g.label, g.box) for g in expected]
    assert [[r["id"] for r in g["results"]] for g in body["garments"]] == [[r.id for r in g.results] for g in expected]


def test_look_k_and_filters(demo_client: TestClient) -> None:
    params = [("k", "2"), ("filter", "gender=Women"), ("filter", "masterCategory=Apparel,Footwear")]
    body = look(demo_client, params=params).json()
    assert body["k"] == 2 and body["filters"] == {"gender": ["Women"], "masterCategory": ["Apparel", "Footwear"]}
    assert body["garments"]
    for garment in body["garments"]:
        assert 1 <= len(garment["results"]) <= 2
        assert all(r["metadata"]["gender"] == "Women" for r in garment["results"])
        assert all(r["metadata"]["masterCategory"] in {"Apparel", "Footwear"} for r in garment["results"])


def test_a_photo_without_garments_is_an_empty_look(demo_client: TestClient) -> None:
    blank = io.BytesIO()
    Image.new("RGB", (200, 300), "white").save(blank, format="PNG")
    body = look(demo_client, blank.getvalue()).json()
    assert body["garments"] == [] and body["query"] == {"format": "PNG", "width": 200, "height": 300}


@pytest.mark.parametrize(
    ("params", "data", "status", "message"),
    [
        ({"filter": "size=XL"}, STREET, 400, "unknown filter column"),
        ({"filter": "gender"}, STREET, 400, "bad filter"),
        ({"k": 0}, STREET, 422, ""),
        ({"k": MAX_K + 1}, STREET, 422, ""),
        ({}, b"", 400, "empty"),
        ({}, b"not a photo at all", 415, "not an image"),
        ({}, STREET[: len(STREET) // 3], 422, "corrupt"),
    ],
)
def test_look_bad_requests_are_4xx_json(demo_client: TestClient, params: dict, data: bytes, status: int,
                                        message: str) -> None:
    assert_error(look(demo_client, data, params), status, message)


def test_look_upload_errors_match_recommend(demo_recommender: Recommender) -> None:
    client = TestClient(create_app(demo_recommender, settings=ApiSettings(max_upload_bytes=20_000)))
    assert_error(look(client), 413, "larger than the limit")
    assert_error(client.post("/api/look", content=b"{}", headers={"Content-Type": "application/json"}), 415,
                 "multipart/form-data")
    body, headers = form({"other": "field"})
    assert_error(client.post("/api/look", content=body, headers=headers), 422, "no complete file")


def test_look_is_documented_and_measured(demo_client: TestClient) -> None:
    spec = demo_client.get("/openapi.json").json()
    operation = spec["paths"]["/api/look"]["post"]
    assert "multipart/form-data" in operation["requestBody"]["content"]
    assert {p["name"] for p in operation["parameters"]} == {"k", "filter"}
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(spec["components"]["schemas"][schema]["properties"]) == {"k", "filters", "query", "garments"}
    assert {"400", "413", "415", "422"} <= set(operation["responses"])
    look(demo_client, params={"k": 1})
    look(demo_client, params={"filter": "size=XL"})
    metrics = demo_client.get("/metrics").text
    assert 'route="/api/look",status="200"' in metrics and 'route="/api/look",status="400"' in metrics


def test_recommend_a_garment_of_the_look(demo_client: TestClient) -> None:
    """``/api/recommend?box=...&garment=LABEL`` (what the page asks when a garment's box is clicked) searches that
    region among the class's catalogue values; a filter on the same column wins; an unknown class is a 422."""
    garment = look(demo_client, params={"k": 1}).json()["garments"][0]
    box = ",".join(map(str, garment["box"]))
    body = upload(demo_client, STREET, params={"k": 10, "box": box, "garment": garment["label"]}).json()
    values = load_classes().values(garment["label"])
    assert len(body["results"]) == 10 and body["box"] == garment["box"]
    assert all(r["metadata"]["articleType"] in values for r in body["results"])
    assert body["filters"]["articleType"] == sorted(set(values))  # the steering is reported as the filter it is
    unsteered = upload(demo_client, STREET, params={"k": 10, "box": box}).json()
    assert unsteered["filters"] == {}
    chosen = upload(demo_client, STREET, params={"k": 3, "box": box, "garment": garment["label"],
                                                 "filter": "articleType=Tshirts"}).json()
    assert chosen["filters"] == {"articleType": ["Tshirts"]}
    assert all(r["metadata"]["articleType"] == "Tshirts" for r in chosen["results"])
    assert_error(upload(demo_client, STREET, params={"garment": "cape"}), 422, "unknown garment 'cape'", "shoes")


@pytest.mark.slow
def test_a_real_server_answers_a_look_over_a_socket(demo_index: Path,
                                                    serve_process: Callable[..., ServeProcess]) -> None:
    base = serve_process(demo_index).start()
    body, headers = form({}, STREET)
    request = urllib.request.Request(f"{base}/api/look?k=2&filter=gender=Women,Men", data=body, headers=headers,
                                     method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 200
        answer = json.loads(response.read())
    assert answer["k"] == 2 and answer["filters"] == {"gender": ["Men", "Women"]} and answer["garments"]
    assert all(1 <= len(g["results"]) <= 2 for g in answer["garments"])
    # a bad upload is a JSON 4xx over the wire too
    body, headers = form({}, b"not a photo at all")
    request = urllib.request.Request(f"{base}/api/look", data=body, headers=headers, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=120)
    assert refused.value.code == 415 and "not an image" in json.loads(refused.value.read())["error"]
