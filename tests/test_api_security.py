"""The API under attack: hostile ids, paths, parameters, origins and multipart bodies.

Guarantees tested here: a file is only ever served by product id, looked up in the index (never a path from the
client); every hostile request gets a 4xx JSON error, never a 5xx, a traceback or a file outside the catalogue;
CORS is closed by default and open only to configured origins; no endpoint mutates the index without an API key
(the items API and ``/admin/reload`` among them: the test fails as soon as one appears unguarded).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from fashionrec.api import ApiSettings, create_app
from fashionrec.embedders import Embedder
from fashionrec.indexing import index_catalog
from fashionrec.modelspec import ModelSpec
from fashionrec.recommend import Recommender
from tests.conftest import DEMO_IMAGES, DEMO_QUERIES, write_catalog

FAST_MODEL = ModelSpec("efficientnet-lite0", 64)
ODD_IDS = ["a b", "50%", "what?", "#1", "ü-ß", "x;y", "'; DROP TABLE items; --", "dot.dot", "plus+sign"]
PLAIN_IDS = [str(n) for n in range(1, 9)]
READ_ONLY_POSTS = {"/api/recommend", "/api/look"}  # POST only because they carry an upload; they change nothing
SECRET = "root:x:0:0"  # what /etc/passwd starts with


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("security-catalog")
    ids = PLAIN_IDS + ODD_IDS
    rows = [["id", "gender", "name"]] + [[i, "Women" if n % 2 else "Men", f"product {i}"] for n, i in enumerate(ids)]
    return write_catalog(root, rows, {f"{i}.jpg": None for i in ids})


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return FAST_MODEL.build()


@pytest.fixture(scope="module")
def recommender(catalog: Path, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recommender]:
    index_dir = tmp_path_factory.mktemp("security-index")
    index_catalog(catalog, index_dir, model=FAST_MODEL, embedder=embedder, progress=False)
    with Recommender.open(index_dir, embedder=embedder) as rec:
        yield rec


@pytest.fixture(scope="module")
def app(recommender: Recommender) -> FastAPI:
    return create_app(recommender, settings=ApiSettings(max_upload_bytes=256 * 1024))


@pytest.fixture(scope="module")
def client(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)  # a bug must show as the 500 a real client would see


def assert_json_4xx(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"error", "detail"} and body["error"]
    assert SECRET not in response.text and "Traceback" not in response.text


# ids and paths ------------------------------------------------------------------------------------------------

HOSTILE_IDS = [
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "..%252F..%252Fetc%252Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%2Fetc%2Fpasswd",
    "....%2F%2F....%2F%2Fetc%2Fpasswd",
    "..%5C..%5Cwindows%5Cwin.ini",
    "1%00.jpg",
    "%00",
    "1.jpg",
    "1%20",
    "%27%20OR%20%271%27%3D%271",
    "x" * 5000,
    "%C0%AE%C0%AE%2F",  # overlong UTF-8 for "../"
    "%FF%FE",
]


@pytest.mark.parametrize("raw_id", HOSTILE_IDS)
@pytest.mark.parametrize("route", ["/images/{}", "/api/items/{}", "/api/items/{}/similar"])
def test_hostile_ids_are_json_4xx(client: TestClient, route: str, raw_id: str) -> None:
    assert_json_4xx(client.get(route.format(raw_id)))


@pytest.mark.parametrize(
    "path",
    ["/images/../../../../etc/passwd", "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd", "/static/../../../etc/passwd",
     "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/images/%2F..%2F..%2Fetc%2Fpasswd", "//etc/passwd"],
)
def test_traversal_in_the_url_never_serves_a_file(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (400, 404), response.status_code
    assert SECRET not in response.text


@pytest.mark.parametrize("item_id", ODD_IDS)
def test_any_catalogue_id_works_url_encoded(client: TestClient, catalog: Path, item_id: str) -> None:
    encoded = quote(item_id, safe="")
    assert client.get(f"/api/items/{encoded}").json()["id"] == item_id
    image = client.get(f"/images/{encoded}")
    assert image.status_code == 200 and image.content == (catalog / "images" / f"{item_id}.jpg").read_bytes()
    similar = client.get(f"/api/items/{encoded}/similar", params={"k": 3}).json()["results"]
    assert len(similar) == 3 and item_id not in {r["id"] for r in similar}


def test_images_are_looked_up_by_id_in_the_index_only(
    recommender: Recommender, embedder: Embedder, catalog: Path, tmp_path: Path
) -> None:
    """The served file is the one recorded at indexing; a vanished file is a 404 that does not reveal its path."""
    copy = tmp_path / "catalog"
    shutil.copytree(catalog, copy)
    index_dir = tmp_path / "index"
    index_catalog(copy, index_dir, model=FAST_MODEL, embedder=embedder, progress=False)
    (copy / "images" / "1.jpg").unlink()
    with Recommender.open(index_dir, embedder=embedder) as rec:
        client = TestClient(create_app(rec), raise_server_exceptions=False)
        response = client.get("/images/1")
        assert_json_4xx(response)
        assert response.status_code == 404 and str(tmp_path) not in response.text
        assert client.get("/images/2").content == DEMO_IMAGES[1].read_bytes()


# parameters ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "params",
    [
        {"k": "0"}, {"k": "-1"}, {"k": "1001"}, {"k": "abc"}, {"k": "1e9"}, {"k": "99999999999999999999999"},
        {"filter": "gender"}, {"filter": "=Women"}, {"filter": "gender="}, {"filter": "price=1"},
        {"filter": "../../etc/passwd=1"}, {"filter": "gender=Women\x00"},
    ],
)
def test_hostile_parameters_are_json_4xx(client: TestClient, params: dict[str, str]) -> None:
    if params.get("filter") == "gender=Women\x00":  # an unknown value matches nothing (not "Women": no NUL stripping)
        assert client.get("/api/items/1/similar", params=params).json()["results"] == []
    else:
        assert_json_4xx(client.get("/api/items/1/similar", params=params))


# CORS ---------------------------------------------------------------------------------------------------------

def _preflight(client: TestClient, origin: str) -> httpx.Response:
    return client.options("/api/recommend", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})


def test_cors_is_closed_by_default(client: TestClient) -> None:
    for origin in ("https://evil.example", "null", "http://127.0.0.1:8000"):
        assert "access-control-allow-origin" not in client.get("/healthz", headers={"Origin": origin}).headers
        assert "access-control-allow-origin" not in _preflight(client, origin).headers


def test_cors_opens_only_to_configured_origins(recommender: Recommender) -> None:
    shop = "https://shop.example"
    client = TestClient(create_app(recommender, settings=ApiSettings(cors_origins=(shop,))))
    assert client.get("/healthz", headers={"Origin": shop}).headers["access-control-allow-origin"] == shop
    assert _preflight(client, shop).headers["access-control-allow-origin"] == shop
    for origin in ("https://evil.example", "https://shop.example.evil.example", "null"):
        assert "access-control-allow-origin" not in client.get("/healthz", headers={"Origin": origin}).headers
        preflight = _preflight(client, origin)
        assert preflight.status_code == 400 and "access-control-allow-origin" not in preflight.headers


# mutating endpoints -------------------------------------------------------------------------------------------

def _api_routes(routes: Iterable[object], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every endpoint under ``routes`` with its full path. FastAPI keeps a router added with ``include_router`` as
    one entry holding that router (``original_router``), so ``app.routes`` alone holds none of its endpoints."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes, prefix + route.include_context.prefix)  # type: ignore[attr-defined]


def _mutating_routes(app: FastAPI) -> list[tuple[str, str]]:
    return [
        (method, path)
        for path, route in _api_routes(app.routes)
        for method in route.methods
        if method in {"POST", "PUT", "PATCH", "DELETE"} and path not in READ_ONLY_POSTS
    ]


def test_mutating_endpoints_require_an_api_key(app: FastAPI, client: TestClient) -> None:
    """Every add/remove/re-index endpoint must refuse a request without a key (401/403); this fails as soon as one
    is added unguarded."""
    endpoints = {path for path, _ in _api_routes(app.routes)}
    assert {"/api/recommend", "/api/items/{item_id}", "/healthz"} <= endpoints  # the walk finds the app's endpoints
    routes = _mutating_routes(app)
    assert set(routes) >= {("PUT", "/api/items/{item_id}"), ("PATCH", "/api/items/{item_id}"),
                           ("DELETE", "/api/items/{item_id}"), ("POST", "/admin/reload")}
    for method, path in routes:
        url = path.replace("{item_id}", "1")
        response = client.request(method, url, json={})
        assert response.status_code in (401, 403), (method, path, response.status_code)
    methods = {m for _, route in _api_routes(app.routes) for m in route.methods}
    assert "GET" in methods and methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_items_cannot_be_changed_without_a_key(client: TestClient, method: str) -> None:
    response = client.request(method, "/api/items/1")
    assert response.status_code in (401, 403, 405)
    assert client.get("/api/items/1").status_code == 200


# multipart ----------------------------------------------------------------------------------------------------

BOUNDARY = "sec-boundary"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def _part(name: str, data: bytes, filename: str = "photo.jpg") -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + data + b"\r\n"


PHOTO = min(DEMO_QUERIES.glob("*.jpg")).read_bytes()
END = f"--{BOUNDARY}--\r\n".encode()


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"no boundary anywhere" * 100, MULTIPART),
        (f"--{BOUNDARY}\r\n".encode() + b"X" * 300_000, MULTIPART),  # one endless part header, past the limit
        (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n".encode() + PHOTO, MULTIPART),
        (_part("file", b"\xff\xd8\xff\xe0" + b"\x00" * 1000) + END, MULTIPART),
        (b"".join(_part(f"f{n}", b"x") for n in range(3000)) + END, MULTIPART),  # thousands of parts, no file
        (_part("file", PHOTO) + END, {"Content-Type": "multipart/form-data"}),  # boundary missing
        (_part("file", PHOTO) + END, {"Content-Type": "multipart/form-data; boundary=\"\""}),
        (_part("file", PHOTO) + END, {"Content-Type": "multipart/mixed; boundary=" + BOUNDARY}),
        (_part("file", b"A" * 300_000) + END, MULTIPART),  # over the 256 KiB limit of this app
    ],
)
def test_malformed_or_oversized_multipart_is_json_4xx(client: TestClient, body: bytes, headers: dict[str, str]) -> None:
    assert_json_4xx(client.post("/api/recommend", content=body, headers=headers))


def test_client_file_name_and_type_are_ignored(client: TestClient, tmp_path: Path) -> None:
    """A hostile file name is just ignored (nothing is written anywhere); the bytes decide what the file is."""
    body = _part("file", PHOTO, filename="../../../../tmp/evil.sh") + _part("file", b"second file ignored") + END
    response = client.post("/api/recommend", content=body, headers=MULTIPART, params={"k": 2})
    assert response.status_code == 200 and len(response.json()["results"]) == 2
    assert not Path("/tmp/evil.sh").exists()


def test_server_still_answers_after_the_attacks(client: TestClient) -> None:
    for raw_id in HOSTILE_IDS:
        client.get(f"/images/{raw_id}")
    client.post("/api/recommend", content=b"junk", headers=MULTIPART)
    assert client.get("/healthz").json()["status"] == "ok"
    ok = client.post("/api/recommend", files={"file": ("q.jpg", PHOTO, "image/jpeg")}, params={"k": 4})
    assert ok.status_code == 200 and len(ok.json()["results"]) == 4
