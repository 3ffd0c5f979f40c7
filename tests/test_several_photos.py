"""Several photos per product (issue 17): each photo is embedded, the product is found by whichever matches best,
once per answer, and the answer says which photo matched."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fashionrec import live
from fashionrec.indexing import index_catalog
from fashionrec.modelspec import ModelSpec
from fashionrec.recommend import Recommender
from fashionrec.stores.faiss_store import FaissStore, build_index
from tests.conftest import AUTH, DEMO_QUERIES

PHOTOS = [(DEMO_QUERIES / f"{name}.jpg").read_bytes() for name in ("dress", "shoes", "pants")]


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


def test_a_writer_that_missed_another_ones_write_rebuilds_with_its_photos(live_rec: Recommender) -> None:
    photos = [live.embed_photo(live_rec, p) for p in PHOTOS]
    with Recommender.open(live_rec.index_dir) as other:
        live.put_item(other, "multi", photos, {})
    live.put_item(live_rec, "single", photos[0], {})  # live_rec's store is two generations behind now: rebuilt from SQLite
    assert [(r.id, r.photo) for r in (live_rec.recommend(p, k=2)[0] for p in PHOTOS[1:])] == [("multi", 1), ("multi", 2)]
    assert len(live_rec) == 22


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


def test_a_later_index_of_the_folder_drops_extra_photos(live_rec: Recommender, live_index: Path) -> None:
    photos = [live.embed_photo(live_rec, p) for p in PHOTOS]
    live.put_item(live_rec, "1548", photos, {"articleType": "Mixed"})  # a catalogue product given three photos
    index_catalog(live_index.parent / "catalog", live_index, model=ModelSpec("efficientnet-lite0", 64), progress=False)
    with Recommender.open(live_index) as reopened:
        assert reopened.db.photo_path("1548", 1) is None and len(reopened) == 20
        assert isinstance(reopened.store, FaissStore) and reopened.store.photos is None


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_the_store_finds_each_product_once_by_its_best_photo(kind: str) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(6, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index, resolved = build_index(vectors, kind)  # type: ignore[arg-type]
    store = FaissStore(index, ["a", "a", "a", "b", "c", "d"], resolved, {}, photos=[0, 1, 2, 0, 0, 0])
    assert len(store) == 4
    for n in range(3):
        hits = store.search(vectors[n], 4)[0]
        assert (hits[0].id, hits[0].photo) == ("a", n) and sorted(h.id for h in hits) == ["a", "b", "c", "d"]
    assert [h.id for h in store.search(vectors[1], 4, exclude={"a"})[0]] == [
        h.id for h in store.search(vectors[1], 4)[0] if h.id != "a"]
    store.remove("a")
    assert len(store) == 3 and store.photos is None and store.index.ntotal == 3


def test_a_catalogue_row_can_name_several_photos(tmp_path: Path) -> None:
    import csv
    import shutil

    from tests.conftest import subset_catalog

    catalog = subset_catalog(tmp_path / "catalog", 10)
    (catalog / "extra").mkdir()
    shutil.copy(DEMO_QUERIES / "shoes.jpg", catalog / "extra" / "shoes.jpg")
    shutil.copy(DEMO_QUERIES / "pants.jpg", catalog / "extra" / "pants.jpg")
    with (catalog / "styles.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    first, second, third = rows[1][0], rows[2][0], rows[3][0]
    listed = {first: f"images/{first}.jpg; extra/shoes.jpg ;extra/pants.jpg", second: f"images/{second}.jpg;extra/gone.jpg",
              third: "../outside.jpg"}
    rows = [rows[0] + ["images"]] + [row + [listed.get(row[0], "")] for row in rows[1:]]
    with (catalog / "styles.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    model = ModelSpec("efficientnet-lite0", 64)
    result = index_catalog(catalog, tmp_path / "index", model=model, progress=False)
    assert result.total == 9 and result.embedded == 11  # 9 products, 2 further photos
    assert result.report.unsafe_paths == [third]
    assert result.report.missing_images == [f"{second} (photo 1: extra/gone.jpg)"]
    with Recommender.open(tmp_path / "index") as rec:
        assert "images" not in rec.columns and len(rec) == 9
        assert [(rec.recommend(p, k=1)[0].id, rec.recommend(p, k=1)[0].photo) for p in PHOTOS[1:]] == [
            (first, 1), (first, 2)]
    assert index_catalog(catalog, tmp_path / "index", model=model, progress=False).embedded == 0  # incremental
    rows[1][-1] = f"images/{first}.jpg;extra/pants.jpg"  # one photo fewer: pants is photo 1 now
    with (catalog / "styles.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    assert index_catalog(catalog, tmp_path / "index", model=model, progress=False).embedded == 1
    with Recommender.open(tmp_path / "index") as rec:
        assert (rec.recommend(PHOTOS[2], k=1)[0].id, rec.recommend(PHOTOS[2], k=1)[0].photo) == (first, 1)
        assert rec.db.photo_path(first, 2) is None
