"""Shoppers steer the results: crop box, liked / disliked products, "the same, but another colour".

Library, HTTP API and CLI over the demo index: every new parameter is validated, and the behaviour is the promised
one (a box is the cropped photo, a like pulls the answer toward that product, a dislike never comes back, one
like alone is "more like this", differ gives k results that all changed the column).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fashionrec.cli import main
from fashionrec.errors import FashionrecError
from fashionrec.feedback import MAX_EXAMPLES, METHODS, BoxError, UnknownExampleError, box_pixels, check_examples
from fashionrec.imageio import load_image
from fashionrec.recommend import Recommender
from tests.conftest import DEMO_QUERIES, assert_error

QUERY = DEMO_QUERIES / "t-shirt.jpg"  # 240 x 320
PROPS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def rec(demo_recommender: Recommender) -> Recommender:
    return demo_recommender


@pytest.fixture(scope="module")
def client(demo_client: TestClient) -> TestClient:
    return demo_client


@pytest.fixture
def method(rec: Recommender, request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs the test once per feedback method (set on the shared recommender, restored after)."""
    before = rec.feedback_method
    rec.feedback_method = request.param
    yield request.param
    rec.feedback_method = before


both_methods = pytest.mark.parametrize("method", METHODS, indirect=True)


def ids(results: list) -> list[str]:
    return [r.id for r in results]


def unit_vector(rec: Recommender, item_id: str) -> np.ndarray:
    vector = rec.project(rec.db.vector(item_id)[None, :])[0]
    return vector / np.linalg.norm(vector)


def post(client: TestClient, params: dict | list | None = None, data: bytes | None = None) -> httpx.Response:
    return client.post("/api/recommend", params=params,
                       files={"file": ("q.jpg", QUERY.read_bytes() if data is None else data, "image/jpeg")})


# crop box -----------------------------------------------------------------------------------------------------
def test_box_pixels_and_fractions_give_the_same_rectangle() -> None:
    assert box_pixels("24,32,120,160", 240, 320) == (24, 32, 144, 192)
    assert box_pixels("0.1,0.1,0.5,0.5", 240, 320) == (24, 32, 144, 192)
    assert box_pixels((0, 0, 1, 1), 240, 320) == (0, 0, 240, 320)


@pytest.mark.parametrize("box, fragment", [
    ("10,10,300,10", "outside"), ("0.5,0.5,0.6,0.1", "outside"), ("0,0,0,10", "zero area"),
    ("1,2,3", "x,y,w,h"), ("a,b,c,d", "x,y,w,h"), ("-1,0,5,5", "x,y,w,h"), ((0, 0, float("nan"), 1), "box"),
])
def test_a_bad_box_is_an_error_that_names_the_box(box: object, fragment: str) -> None:
    with pytest.raises(BoxError, match="box") as info:
        box_pixels(box, 240, 320)  # type: ignore[arg-type]
    assert fragment in str(info.value)


def test_a_box_gives_the_results_of_the_cropped_photo(rec: Recommender) -> None:
    cropped = load_image(QUERY).crop((24, 32, 144, 192))
    expected = ids(rec.recommend(cropped, k=8))
    assert ids(rec.recommend(QUERY, k=8, box="24,32,120,160")) == expected
    assert ids(rec.recommend(QUERY, k=8, box=(0.1, 0.1, 0.5, 0.5))) == expected


def test_api_box_matches_the_cropped_upload_and_reports_the_region(client: TestClient, tmp_path: Path) -> None:
    cropped = tmp_path / "crop.png"
    load_image(QUERY).crop((24, 32, 144, 192)).save(cropped)
    plain = client.post("/api/recommend", params={"k": 6},
                        files={"file": ("c.png", cropped.read_bytes(), "image/png")}).json()
    boxed = post(client, {"k": 6, "box": "0.1,0.1,0.5,0.5"}).json()
    assert [r["id"] for r in boxed["results"]] == [r["id"] for r in plain["results"]]
    assert boxed["box"] == [24, 32, 120, 160] and plain["box"] is None
    assert boxed["query"] == {"format": "JPEG", "width": 240, "height": 320}


@pytest.mark.parametrize("box, fragment", [
    ("200,10,100,10", "outside"), ("0,0,0,0", "zero area"), ("0.9,0,0.2,0.5", "outside"), ("1,2,3", "box"),
    ("x", "box"), ("-5,0,10,10", "box"),
])
def test_api_bad_box_is_422(client: TestClient, box: str, fragment: str) -> None:
    assert_error(post(client, {"box": box}), 422, fragment)


def test_cli_bad_box_is_one_line_and_exit_2(demo_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for box in ("10,10,500,10", "nope"):
        assert main(["recommend", str(QUERY), "--index-dir", str(demo_index), "--box", box]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "box" in err and "Traceback" not in err


def test_cli_box_matches_the_library(demo_index: Path, rec: Recommender, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recommend", str(QUERY), "--index-dir", str(demo_index), "--box", "24,32,120,160", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in out["results"]] == ids(rec.recommend(QUERY, box="24,32,120,160"))


# relevance feedback: validation ----------------------------------------------------------------------------
def test_examples_are_checked() -> None:
    assert check_examples(["1", "2", "1"], ["3"]).like == ("1", "2")
    with pytest.raises(FashionrecError, match="like names 21 products"):
        check_examples([str(i) for i in range(MAX_EXAMPLES + 1)], [])
    with pytest.raises(FashionrecError, match="unlike names"):
        check_examples([], [str(i) for i in range(MAX_EXAMPLES + 1)])
    with pytest.raises(FashionrecError, match="both like and unlike"):
        check_examples(["1"], ["1"])
    with pytest.raises(FashionrecError, match="like must be a list"):
        check_examples("15970", [])  # type: ignore[arg-type]


def test_unknown_example_ids_name_the_argument(rec: Recommender) -> None:
    item = rec.store.ids[0]
    with pytest.raises(UnknownExampleError, match="like: unknown product id 'nope'"):
        rec.similar(item, like=["nope"])
    with pytest.raises(UnknownExampleError, match="unlike: unknown product id 'nope'"):
        rec.recommend(QUERY, unlike=["nope"])
    with pytest.raises(FashionrecError, match="at least one"):
        rec.recommend_examples([], unlike=[item])
    with pytest.raises(FashionrecError, match="feedback method"):
        rec.steer(None, 5, None, check_examples([item], []), method="magic")


def test_api_validates_examples(client: TestClient, rec: Recommender) -> None:
    item = rec.store.ids[0]
    for route in (f"/api/items/{item}/similar", "/api/examples"):
        assert_error(client.get(route, params={"like": ["nope"]}), 422, "like", "nope")
        assert_error(client.get(route, params={"like": [item], "unlike": ["gone"]}), 422, "unlike", "gone")
        too_many = client.get(route, params={"like": rec.store.ids[1 : MAX_EXAMPLES + 2]})
        assert_error(too_many, 422, "like", str(MAX_EXAMPLES))
        assert_error(client.get(route, params={"like": [rec.store.ids[1]], "unlike": [rec.store.ids[1]]}), 400, "both")
    assert_error(post(client, {"like": "nope"}), 422, "like", "nope")
    assert_error(post(client, {"unlike": rec.store.ids[1 : MAX_EXAMPLES + 2]}), 422, "unlike")
    assert_error(client.get("/api/examples"), 400, "like")
    assert_error(client.get("/api/items/nope/similar", params={"like": [item]}), 404, "nope")


def test_cli_validates_examples(demo_index: Path, rec: Recommender, capsys: pytest.CaptureFixture[str]) -> None:
    many = [arg for i in rec.store.ids[: MAX_EXAMPLES + 1] for arg in ("--like", i)]
    for argv in (["--like", "nope"], [str(QUERY), "--unlike", "nope"], many, [], ["--differ", "nope", "--like",
                                                                                 rec.store.ids[0]]):
        assert main(["recommend", "--index-dir", str(demo_index), *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("fashionrec: error:"), err


# relevance feedback: behaviour ------------------------------------------------------------------------------
@both_methods
def test_one_like_alone_is_more_like_this(rec: Recommender, method: str) -> None:
    for item in rec.store.ids[:: 37]:
        assert ids(rec.recommend_examples([item], k=7)) == ids(rec.similar(item, k=7))
        assert ids(rec.recommend_examples([item], k=4, filters={"gender": ["Women"]})) == ids(
            rec.similar(item, k=4, filters={"gender": ["Women"]}))


@both_methods
def test_a_like_moves_the_results_toward_that_product(rec: Recommender, method: str) -> None:
    before = rec.recommend(QUERY, k=5)
    types = {r.metadata["articleType"] for r in before}
    liked = next(i for i in rec.store.ids if rec.item(i).metadata["articleType"] not in types)
    after = rec.recommend(QUERY, k=5, like=[liked])
    target = unit_vector(rec, liked)

    def closeness(results: list) -> float:
        return float(np.mean([unit_vector(rec, r.id) @ target for r in results]))

    assert liked not in ids(after)
    assert closeness(after) > closeness(before)


@both_methods
def test_an_unlike_moves_the_results_away(rec: Recommender, method: str) -> None:
    item = rec.store.ids[3]
    before = rec.similar(item, k=5)
    disliked = before[0].id
    after = rec.similar(item, k=5, unlike=[disliked])
    target = unit_vector(rec, disliked)
    assert disliked not in ids(after)
    assert np.mean([unit_vector(rec, r.id) @ target for r in after[:4]]) <= np.mean(
        [unit_vector(rec, r.id) @ target for r in before[1:5]]) + 1e-6


@PROPS
@given(data=st.data(), method=st.sampled_from(METHODS))
def test_examples_never_come_back(rec: Recommender, data: st.DataObject, method: str) -> None:
    pool = rec.store.ids
    item = data.draw(st.sampled_from(pool))
    others = [i for i in pool if i != item]
    disliked = data.draw(st.lists(st.sampled_from(others), min_size=1, max_size=4, unique=True))
    liked = data.draw(st.lists(st.sampled_from([i for i in others if i not in disliked]), max_size=3, unique=True))
    k = data.draw(st.integers(1, 30))
    results = ids(rec.steer(unit_vector(rec, item), k, None, check_examples(liked, disliked), method=method))
    assert len(results) == k
    assert not set(results) & (set(disliked) | set(liked))
    similar = ids(rec.similar(item, k, like=liked, unlike=disliked))
    assert item not in similar and not set(similar) & set(disliked)


def test_filters_apply_with_feedback(rec: Recommender) -> None:
    item = rec.store.ids[10]
    for method in METHODS:
        results = rec.steer(unit_vector(rec, item), 6, {"gender": ["Women"]}, check_examples([rec.store.ids[11]],
                            [rec.store.ids[12]]), method=method)
        assert results and all(r.metadata["gender"] == "Women" for r in results)


def test_api_feedback_matches_the_library(client: TestClient, rec: Recommender) -> None:
    item, liked, disliked = rec.store.ids[20], rec.store.ids[21], rec.store.ids[22]
    body = client.get(f"/api/items/{item}/similar", params={"like": [liked], "unlike": [disliked], "k": 6}).json()
    assert [r["id"] for r in body["results"]] == ids(rec.similar(item, 6, like=[liked], unlike=[disliked]))
    assert body["like"] == [liked] and body["unlike"] == [disliked] and body["differ"] is None
    photo = post(client, {"like": [liked], "unlike": [disliked], "k": 4}).json()
    assert [r["id"] for r in photo["results"]] == ids(rec.recommend(QUERY, 4, like=[liked], unlike=[disliked]))
    examples = client.get("/api/examples", params={"like": [item], "k": 5}).json()
    assert [r["id"] for r in examples["results"]] == ids(rec.similar(item, 5))


def test_cli_like_alone_is_more_like_this(demo_index: Path, rec: Recommender,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    item = rec.store.ids[5]
    assert main(["recommend", "--index-dir", str(demo_index), "--like", item, "--json", "-k", "6"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in out["results"]] == ids(rec.similar(item, 6))


# differ -----------------------------------------------------------------------------------------------------
def test_differ_returns_k_results_none_with_the_reference_value(rec: Recommender) -> None:
    for item in rec.store.ids[:: 50]:
        colour = rec.item(item).metadata["baseColour"]
        results = rec.similar(item, k=10, differ="baseColour")
        assert len(results) == 10
        assert all(r.metadata["baseColour"] not in (colour, "") for r in results)
        plain = [r for r in rec.similar(item, k=len(rec)) if r.metadata["baseColour"] not in (colour, "")]
        assert ids(results) == ids(plain[:10])  # the most similar of those that differ, in order


def test_differ_combines_with_filters_and_likes(rec: Recommender) -> None:
    item = rec.store.ids[7]
    meta = rec.item(item).metadata
    results = rec.similar(item, k=5, filters={"gender": [meta["gender"]]}, differ="articleType")
    assert results and all(r.metadata["gender"] == meta["gender"] and r.metadata["articleType"] != meta["articleType"]
                           for r in results)
    liked = rec.store.ids[8]
    colour = rec.item(liked).metadata["baseColour"]
    steered = rec.recommend(QUERY, k=5, like=[liked], differ="baseColour")
    assert len(steered) == 5 and all(r.metadata["baseColour"] != colour for r in steered)
    with pytest.raises(FashionrecError, match="unknown differ column 'nope'"):
        rec.similar(item, differ="nope")
    with pytest.raises(FashionrecError, match="differ needs a reference"):
        rec.recommend(QUERY, differ="baseColour")


def test_api_differ(client: TestClient, rec: Recommender) -> None:
    item = rec.store.ids[30]
    colour = rec.item(item).metadata["baseColour"]
    body = client.get(f"/api/items/{item}/similar", params={"differ": "baseColour", "k": 8}).json()
    assert len(body["results"]) == 8 and body["differ"] == "baseColour"
    assert all(r["metadata"]["baseColour"] != colour for r in body["results"])
    assert_error(client.get(f"/api/items/{item}/similar", params={"differ": "nope"}), 400, "differ", "nope")
    assert_error(post(client, {"differ": "baseColour"}), 400, "differ")


def test_openapi_documents_the_steering_parameters(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    def params(path: str, verb: str) -> dict[str, dict]:
        return {p["name"]: p for p in spec["paths"][path][verb]["parameters"]}

    photo, similar = params("/api/recommend", "post"), params("/api/items/{item_id}/similar", "get")
    for route in (photo, similar, params("/api/examples", "get")):
        assert route["like"]["schema"]["maxItems"] == MAX_EXAMPLES and route["unlike"]["schema"]["type"] == "array"
        assert "differ" in route
    assert "pattern" in str(photo["box"]["schema"])


def test_nothing_is_written_to_the_index(demo_index: Path, client: TestClient, rec: Recommender) -> None:
    before = {p: p.stat().st_mtime_ns for p in demo_index.rglob("*") if p.is_file() and "-wal" not in p.name}
    assert "catalog.sqlite" in {p.name for p in before}  # the index's files are really watched
    assert post(client, {"like": [rec.store.ids[1]], "unlike": [rec.store.ids[2]], "box": "0.1,0.1,0.5,0.5"}).status_code == 200
    similar = client.get(f"/api/items/{rec.store.ids[3]}/similar", params={"differ": "baseColour", "like": [rec.store.ids[4]]})
    assert similar.status_code == 200
    after = {p: p.stat().st_mtime_ns for p in demo_index.rglob("*") if p.is_file() and "-wal" not in p.name}
    assert after == before


def test_a_small_image_box_rounds_inside() -> None:
    image = Image.new("RGB", (3, 3))
    assert box_pixels((2.4, 2.4, 0.6, 0.6), 3, 3) == (2, 2, 3, 3)
    assert image.crop(box_pixels((2.4, 2.4, 0.6, 0.6), 3, 3)).size == (1, 1)
