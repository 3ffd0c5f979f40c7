"""Refresh without downtime: ``POST /admin/reload`` and the server's own refresh swap in a new index
generation between requests; requests in flight finish on the one they started with; the old one is closed."""

from __future__ import annotations

import csv
import json
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fashionrec import live
from fashionrec.api import ApiSettings, create_app
from fashionrec.api.service import RecommenderService
from fashionrec.indexing import index_catalog
from fashionrec.modelspec import ModelSpec
from fashionrec.recommend import Recommender
from tests.conftest import AUTH, DRESS, KEY, ServeProcess, form, subset_catalog

FAST_MODEL = ModelSpec("efficientnet-lite0", 64)


def closed(rec: Recommender) -> bool:
    try:
        rec.db.conn.execute("SELECT 1")
    except sqlite3.ProgrammingError:
        return True
    return False


@pytest.fixture
def app_and_service(live_index: Path):
    rec = Recommender.open(live_index)
    app = create_app(rec, settings=ApiSettings(api_key=KEY))
    service: RecommenderService = app.state.service
    yield TestClient(app), service
    service.close()


def test_admin_reload_swaps_the_recommender_and_closes_the_old_one(app_and_service) -> None:
    client, service = app_and_service
    old = service.recommender
    assert client.post("/admin/reload").status_code == 401
    answer = client.post("/admin/reload", headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"items": 20, "generation": service.generation()}
    assert service.recommender is not old and closed(old)
    assert service.recommender.embedder is old.embedder  # same model: not loaded again
    assert client.post("/api/recommend", files={"file": ("q.jpg", DRESS)}).status_code == 200


def test_reload_keeps_the_ranking_options_the_server_was_started_with(app_and_service) -> None:
    client, service = app_and_service
    service.recommender.consensus_weight = 0.5  # as `fashionrec serve --consensus 0.5` sets it
    service.recommender.localise = True
    before = service.recommender.ranking
    assert client.post("/admin/reload", headers=AUTH).status_code == 200
    assert service.recommender.ranking == before and service.recommender.encoder.localise is True


def test_reload_is_refused_without_a_configured_key(live_index: Path) -> None:
    with Recommender.open(live_index) as rec:
        client = TestClient(create_app(rec, settings=ApiSettings()))
        assert client.post("/admin/reload", headers=AUTH).status_code == 403


def test_a_request_in_flight_keeps_its_recommender_until_it_ends(app_and_service) -> None:
    _, service = app_and_service
    with service.use() as rec:
        service.reload()
        assert service.recommender is not rec
        assert not closed(rec) and rec.recommend(DRESS, k=3)  # still fully usable
    assert closed(rec)


def test_refresh_picks_up_a_change_made_by_another_process(app_and_service, live_index: Path) -> None:
    client, service = app_and_service
    assert service.refresh() is False
    with Recommender.open(live_index) as other:  # e.g. `fashionrec add` while the server runs
        live.put_item(other, "from-elsewhere", live.embed_photo(other, DRESS), {"articleType": "Dresses"})
    assert service.stale()
    assert service.refresh() is True and service.refresh() is False
    answer = client.post("/api/recommend", files={"file": ("q.jpg", DRESS)}, params={"k": 1})
    assert answer.json()["results"][0]["id"] == "from-elsewhere"
    assert client.get("/api/facets").json()["items"] == 21
    assert "fashionrec_index_items 21.0" in client.get("/metrics").text


def get_json(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.mark.slow
def test_queries_while_the_index_is_rebuilt_and_swapped_never_fail_or_mix_generations(
    tmp_path: Path, serve_process: Callable[..., ServeProcess]
) -> None:
    """Two catalogues overlapping in 10 products (20 and 25 products) are indexed in turn into the served index
    dir, four times; clients query all along. Every answer is a 200 whose products all come from one of them."""
    first = subset_catalog(tmp_path / "a", 20)
    second = subset_catalog(tmp_path / "b", 25, start=10)
    ids = {n: {row[0] for row in list(csv.reader((c / "styles.csv").open()))[1:]} for n, c in ((20, first), (25, second))}
    shared = min(ids[20] & ids[25])
    index_dir = tmp_path / "index"
    index_catalog(first, index_dir, model=FAST_MODEL, progress=False)
    base = serve_process(index_dir, args=["--refresh", "0.2"]).start()

    stop = threading.Event()
    answers: list[tuple[int, list[str]]] = []
    failures: list[str] = []
    body, headers = form({}, DRESS)

    def client() -> None:
        while not stop.is_set():
            try:
                for status, answer in (get_json(f"{base}/api/recommend?k=10", body, headers),
                                       get_json(f"{base}/api/items/{shared}/similar?k=10")):
                    answers.append((status, [r["id"] for r in answer.get("results", [])]))
            except Exception as exc:  # noqa: BLE001 - a connection error is a failure to report
                failures.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for catalog, count in ((second, 25), (first, 20), (second, 25), (first, 20)):
            index_catalog(catalog, index_dir, model=FAST_MODEL, progress=False)
            while get_json(f"{base}/healthz")[1]["items"] != count:  # the server switches by itself
                assert not failures, failures
                time.sleep(0.1)
            seen = len(answers)
            while len(answers) < seen + 4:  # some answers from this generation too
                assert not failures, failures
                time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert answers and all(status == 200 for status, _ in answers), {s for s, _ in answers}
    assert all(set(found) <= ids[20] or set(found) <= ids[25] for _, found in answers)
    assert {len(found) for _, found in answers} == {10}


def test_one_request_answers_from_one_generation_while_a_write_lands_in_the_middle(app_and_service) -> None:
    """A request pins the recommender and a snapshot of its store once, for every service call it makes; a write
    landing between two of those calls is seen by the next request, never by the rest of this one."""
    client, service = app_and_service
    app = client.app
    seen: dict[str, object] = {}

    @app.get("/test/two-steps")  # type: ignore[attr-defined, untyped-decorator]
    def two_steps() -> dict[str, int]:
        before = service.health().items
        writer = threading.Thread(target=service.put_item, args=("mid-request", [DRESS], {}))
        writer.start()
        writer.join()
        seen["similar"] = [r.id for r in service.similar(service.recommender.db.iter_items().__next__().id, 20,
                                                          {}).results]
        return {"before": before, "after": service.health().items}

    answer = client.get("/test/two-steps")
    assert answer.status_code == 200, answer.text
    assert answer.json()["before"] == answer.json()["after"] == 20
    assert "mid-request" not in seen["similar"]  # the write is not in this request's store snapshot
    assert client.get("/healthz").json()["items"] == 21  # the next request sees it
    found = client.post("/api/recommend?k=1", files={"file": ("q.jpg", DRESS)}).json()["results"]
    assert found[0]["id"] == "mid-request"
