"""The items API: add, replace, change and remove products of a served index.

Each change is visible to the very next query, survives a SIGKILL of a real server, needs the API key (401 without
or with a wrong one, 403 when the server has none), and a later `fashionrec index` of the catalogue folder makes
the index match the folder again (the folder wins).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fashionrec.api import ApiSettings, create_app
from fashionrec.recommend import Recommender
from tests.conftest import AUTH, DEMO_QUERIES, DRESS, KEY, PHOTOS, ServeProcess, form

SHOES = (DEMO_QUERIES / "shoes.jpg").read_bytes()


def top(client: TestClient, photo: bytes, **params: object) -> list[dict]:
    answer = client.post("/api/recommend", files={"file": ("q.jpg", photo)}, params={"k": 3, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()["results"]


def put(client: TestClient, item_id: str, photo: bytes, headers: dict[str, str] = AUTH, **meta: str):
    return client.put(f"/api/items/{item_id}", files={"file": ("p.jpg", photo)}, data=meta, headers=headers)


def test_writes_need_the_key(live_client: TestClient, live_rec: Recommender) -> None:
    for headers in ({}, {"X-API-Key": "wrong-key-0123456789"}, {"X-API-Key": KEY[:-1]}):
        assert put(live_client, "x1", DRESS, headers=headers).status_code == 401
        assert live_client.patch("/api/items/1548", data={"baseColour": "Red"}, headers=headers).status_code == 401
        answer = live_client.delete("/api/items/1548", headers=headers)
        assert answer.status_code == 401 and set(answer.json()) == {"error", "detail"}
        assert KEY not in answer.text
    assert live_rec.item("x1") is None and live_rec.item("1548") is not None
    assert live_client.get("/api/items/1548").status_code == 200  # reads stay public


def test_no_key_configured_means_writes_are_off(live_rec: Recommender) -> None:
    client = TestClient(create_app(live_rec, settings=ApiSettings()))
    assert put(client, "x1", DRESS).status_code == 403
    assert client.patch("/api/items/1548", data={"baseColour": "Red"}, headers=AUTH).status_code == 403
    assert client.delete("/api/items/1548", headers=AUTH).status_code == 403
    assert live_rec.item("x1") is None and live_rec.item("1548") is not None


def test_add_replace_patch_delete_each_visible_to_the_next_query(live_client: TestClient, live_index: Path) -> None:
    before = live_client.get("/api/facets").json()["items"]
    answer = put(live_client, "new-dress", DRESS, articleType="Dresses", baseColour="Teal")
    assert answer.status_code == 201, answer.text
    assert answer.json()["metadata"]["articleType"] == "Dresses" and answer.json()["metadata"]["gender"] == ""
    assert top(live_client, DRESS)[0]["id"] == "new-dress"
    assert live_client.get("/images/new-dress").content == DRESS
    assert live_client.get("/api/facets").json()["items"] == before + 1

    answer = put(live_client, "new-dress", SHOES, articleType="Sports Shoes")  # replaced whole: photo and metadata
    assert answer.status_code == 200, answer.text
    assert answer.json()["metadata"]["baseColour"] == ""
    assert top(live_client, SHOES)[0]["id"] == "new-dress"
    assert live_client.get("/images/new-dress").content == SHOES
    assert len(list((live_index / "uploads" / "new-dress").iterdir())) == 1  # the replaced photo is gone

    answer = live_client.patch("/api/items/new-dress", data={"baseColour": "Mauve"}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json()["metadata"] == {**answer.json()["metadata"], "articleType": "Sports Shoes", "baseColour": "Mauve"}
    assert [r["id"] for r in top(live_client, DRESS, filter="baseColour=Mauve")] == ["new-dress"]

    assert live_client.delete("/api/items/new-dress", headers=AUTH).status_code == 204
    assert live_client.get("/api/items/new-dress").status_code == 404
    assert "new-dress" not in [r["id"] for r in top(live_client, SHOES)]
    assert top(live_client, DRESS, filter="baseColour=Mauve") == []
    assert not (live_index / "uploads" / "new-dress").exists()
    assert live_client.get("/api/facets").json()["items"] == before


def test_catalogue_products_can_be_changed_and_removed(live_client: TestClient) -> None:
    assert live_client.patch("/api/items/1548", data={"season": "Winter"}, headers=AUTH).json()["metadata"]["season"] == "Winter"
    assert live_client.get("/api/items/1548").json()["metadata"]["season"] == "Winter"
    assert live_client.delete("/api/items/1548", headers=AUTH).status_code == 204
    assert live_client.get("/api/items/1548/similar").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("put", "/api/items/.hidden", {"files": {"file": ("p.jpg", DRESS)}}, 422),
        ("put", "/api/items/a b", {"files": {"file": ("p.jpg", DRESS)}}, 422),
        ("put", "/api/items/ok", {"files": {"file": ("p.jpg", DRESS)}, "data": {"colour": "Red"}}, 422),
        ("put", "/api/items/ok", {"data": {"baseColour": "Red"}, "files": {"other": ("p.jpg", DRESS)}}, 422),
        ("put", "/api/items/ok", {"files": [("file", ("a.jpg", DRESS))] * 9}, 422),
        ("put", "/api/items/ok", {"files": [("file", ("a.jpg", DRESS)), ("file", ("b.jpg", b"not an image"))]}, 415),
        ("put", "/api/items/ok", {"files": {"file": ("p.jpg", b"not an image at all")}}, 415),
        ("put", "/api/items/ok", {"files": {"file": ("p.jpg", DRESS[: len(DRESS) // 2])}}, 422),
        ("put", "/api/items/ok", {"files": {"file": ("p.jpg", b"")}}, 400),
        ("put", "/api/items/ok", {"json": {"baseColour": "Red"}}, 415),
        ("patch", "/api/items/nope", {"data": {"baseColour": "Red"}}, 404),
        ("patch", "/api/items/1548", {"data": {"colour": "Red"}}, 422),
        ("patch", "/api/items/1548", {"files": {"file": ("p.jpg", DRESS)}, "data": {"baseColour": "Red"}}, 422),
        ("delete", "/api/items/nope", {}, 404),
    ],
)
def test_bad_writes_are_4xx_and_change_nothing(
    live_client: TestClient, live_rec: Recommender, method: str, path: str, kwargs: dict, status: int
) -> None:
    count, generation = len(live_rec), live_rec.db.generation
    answer = getattr(live_client, method)(path, headers=AUTH, **kwargs)
    assert answer.status_code == status, answer.text
    assert set(answer.json()) == {"error", "detail"}
    assert len(live_rec) == count and live_rec.db.generation == generation and live_rec.item("ok") is None


def request(base: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def recommend_ids(base: str, photo: bytes, query: str = "k=3") -> list[str]:
    body, headers = form({}, photo)
    status, answer = request(base, "POST", f"/api/recommend?{query}", body, headers)
    assert status == 200, answer
    return [r["id"] for r in json.loads(answer)["results"]]


def test_changes_survive_sigkill_of_a_real_server(
    live_index: Path, serve_process: Callable[..., ServeProcess]
) -> None:
    server = serve_process(live_index, {"FASHIONREC_API_KEY": KEY})
    base = server.start()
    body, headers = form({"articleType": "Dresses", "baseColour": "Teal"}, DRESS)
    assert request(base, "PUT", "/api/items/live-1", body, {**headers, **AUTH})[0] == 201
    assert recommend_ids(base, DRESS)[0] == "live-1"
    body, headers = form({"baseColour": "Mauve"})
    assert request(base, "PATCH", "/api/items/live-1", body, {**headers, **AUTH})[0] == 200
    assert request(base, "DELETE", "/api/items/1548", None, AUTH)[0] == 204
    assert "1548" not in recommend_ids(base, SHOES, "k=20")
    body, headers = form({}, DRESS)
    assert request(base, "PUT", "/api/items/live-2", body, headers)[0] == 401  # the key is needed here too
    server.kill()

    base = server.start()
    assert recommend_ids(base, DRESS)[0] == "live-1"
    status, answer = request(base, "GET", "/api/items/live-1")
    assert status == 200 and json.loads(answer)["metadata"]["baseColour"] == "Mauve"
    assert request(base, "GET", "/images/live-1")[1] == DRESS
    assert request(base, "GET", "/api/items/1548")[0] == 404
    assert "1548" not in recommend_ids(base, SHOES, "k=20")
    assert request(base, "GET", "/api/items/live-2")[0] == 404


def put_three(client: TestClient, item_id: str = "multi", **meta: str) -> None:
    files = [("file", (f"{n}.jpg", photo)) for n, photo in enumerate(PHOTOS)]
    answer = client.put(f"/api/items/{item_id}", files=files, data=meta, headers=AUTH)
    assert answer.status_code == 201, answer.text


def results(client: TestClient, photo: bytes, **params: object) -> list[dict]:
    answer = client.post("/api/recommend", files={"file": ("q.jpg", photo)}, params={"k": 10, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()["results"]


def test_a_product_with_three_photos_is_found_by_any_of_them_once(live_client: TestClient, live_rec: Recommender) -> None:
    put_three(live_client, articleType="Mixed", baseColour="Plum")
    assert len(live_rec) == 21 and live_client.get("/healthz").json()["items"] == 21
    for n, photo in enumerate(PHOTOS):
        found = results(live_client, photo)
        assert found[0]["id"] == "multi" and found[0]["photo"] == n
        assert [r["id"] for r in found].count("multi") == 1 and len(found) == 10
        assert live_client.get("/images/multi", params={"photo": n}).content == photo
    assert live_client.get("/images/multi", params={"photo": 3}).status_code == 404
    assert [r["id"] for r in results(live_client, PHOTOS[2], filter="baseColour=Plum")] == ["multi"]
    assert live_client.patch("/api/items/multi", data={"baseColour": "Teal"}, headers=AUTH).status_code == 200
    assert results(live_client, PHOTOS[1], filter="baseColour=Plum") == []
    assert [(r["id"], r["photo"]) for r in results(live_client, PHOTOS[1], filter="baseColour=Teal")] == [("multi", 1)]
    similar = live_client.get("/api/items/multi/similar", params={"k": 30}).json()["results"]
    assert "multi" not in [r["id"] for r in similar] and len(similar) == 20


def test_photos_survive_a_reopen_and_a_write_cut_short(live_client: TestClient, live_rec: Recommender) -> None:
    put_three(live_client)
    with Recommender.open(live_rec.index_dir) as reopened:
        assert [reopened.recommend(p, k=1)[0].photo for p in PHOTOS] == [0, 1, 2]
    live_rec.db.update_metadata("multi", {c: "" for c in live_rec.columns})  # committed; the vector file is now behind
    with Recommender.open(live_rec.index_dir) as rebuilt:
        assert [(r.id, r.photo) for r in (rebuilt.recommend(p, k=1)[0] for p in PHOTOS)] == [
            ("multi", 0), ("multi", 1), ("multi", 2)]
        assert len(rebuilt) == 21


def test_replacing_with_one_photo_and_deleting_drop_the_others(live_client: TestClient, live_rec: Recommender) -> None:
    put_three(live_client)
    answer = live_client.put("/api/items/multi", files={"file": ("p.jpg", PHOTOS[0])}, headers=AUTH)
    assert answer.status_code == 200
    assert live_client.get("/images/multi", params={"photo": 1}).status_code == 404
    everything = results(live_client, PHOTOS[1], k=30)  # the whole index: "multi" is in it, once, by photo 0
    assert [r["photo"] for r in everything if r["id"] == "multi"] == [0]
    assert len(list((live_rec.index_dir / "uploads" / "multi").iterdir())) == 1
    put_three(live_client, "multi-2")
    assert live_client.delete("/api/items/multi-2", headers=AUTH).status_code == 204
    assert "multi-2" not in [r["id"] for r in results(live_client, PHOTOS[2])] and len(live_rec) == 21


def test_the_items_api_writes_through_to_milvus_and_a_restart_finds_every_change(live_index: Path) -> None:
    """`--store milvus`: PUT (several photos), PATCH and DELETE answer as over FAISS, the very next query sees each
    change, and the database and the collection agree after the server is gone (issue 27)."""
    pytest.importorskip("milvus_lite", reason="Milvus Lite is not installed (pip install 'fashionrec[scale]')")
    from fashionrec.catalog_db import CatalogDB
    from fashionrec.manifest import read
    from fashionrec.publish import publish_to_milvus
    from fashionrec.stores.milvus_store import MilvusStore

    uri = str(live_index.parent / "milvus.db")
    db = CatalogDB(live_index)
    try:
        publish_to_milvus(db, uri, read(db))
    finally:
        db.close()
    with Recommender.open(live_index, store=MilvusStore.open(uri)) as rec:
        client = TestClient(create_app(rec, settings=ApiSettings(api_key=KEY)))
        answer = client.put("/api/items/milvus-new", files=[("file", ("a.jpg", p)) for p in PHOTOS],
                            data={"articleType": "Dresses"}, headers=AUTH)
        assert answer.status_code == 201, answer.text
        assert [(r["id"], r["photo"]) for r in (top(client, p)[0] for p in PHOTOS)] == [
            ("milvus-new", 0), ("milvus-new", 1), ("milvus-new", 2)]
        assert client.get("/healthz").json()["items"] == 21
        assert client.patch("/api/items/milvus-new", data={"articleType": "Gowns"}, headers=AUTH).status_code == 200
        assert top(client, DRESS, filter="articleType=Gowns")[0]["id"] == "milvus-new"
        assert put(client, "milvus-new", SHOES).status_code == 200  # one photo now: the others are gone
        assert top(client, SHOES)[0]["id"] == "milvus-new"
        assert all(r["photo"] == 0 for p in PHOTOS for r in top(client, p, k=20) if r["id"] == "milvus-new")
        assert client.delete("/api/items/1548", headers=AUTH).status_code == 204
        assert "1548" not in [r["id"] for r in top(client, DRESS, k=20)]
        generation = rec.db.generation
    with Recommender.open(live_index, store=MilvusStore.open(uri)) as reopened:
        assert reopened.store.generation == generation and len(reopened) == 20
        assert reopened.recommend(SHOES, k=1)[0].id == "milvus-new"
        assert "1548" not in {r.id for r in reopened.recommend(DRESS, k=20)}
