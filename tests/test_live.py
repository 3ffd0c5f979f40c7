"""Live writes to an open index: a writer that missed another one's write rebuilds from the database."""

from __future__ import annotations

import pytest

from fashionrec import live
from fashionrec.catalog_db import StoredItem
from fashionrec.recommend import Recommender
from tests.conftest import DEMO_QUERIES, DRESS, PHOTOS


def test_a_writer_that_missed_another_ones_write_rebuilds_with_its_photos(live_rec: Recommender) -> None:
    photos = [live.embed_photo(live_rec, p) for p in PHOTOS]
    with Recommender.open(live_rec.index_dir) as other:
        live.put_item(other, "multi", photos, {})
    live.put_item(live_rec, "single", photos[0], {})  # live_rec's store is two generations behind now: rebuilt from SQLite
    assert [(r.id, r.photo) for r in (live_rec.recommend(p, k=2)[0] for p in PHOTOS[1:])] == [("multi", 1), ("multi", 2)]
    assert len(live_rec) == 22


def test_a_write_cut_short_before_the_vector_file_is_recovered_from_the_database(live_rec: Recommender) -> None:
    photo = live.embed_photo(live_rec, DRESS)
    item = StoredItem("cut-short", str(DEMO_QUERIES / "dress.jpg"), {c: "" for c in live_rec.columns})
    live_rec.db.put_item(item, photo.digest, photo.features[0])  # committed; the process "dies" before the FAISS file
    with Recommender.open(live_rec.index_dir) as reopened:
        assert reopened.recommend(DRESS, k=1)[0].id == "cut-short"
        assert len(reopened) == len(live_rec) + 1


def test_an_index_behind_by_many_writes_is_saved_merged_once_opened(
    live_rec: Recommender, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Writes made by processes that never merge (``fashionrec add``) are replayed at open; past a merge's worth, the
    opener saves the file merged, so that the next one starts from there."""
    from fashionrec.stores import faiss_store

    photo = live.embed_photo(live_rec, DRESS)
    for n in range(3):
        live.put_item(live_rec, f"cli-{n}", photo, {})
    path = live_rec.index_dir / faiss_store.INDEX_FILE
    assert faiss_store.read_file(path, payload=False)[0]["generation"] < live_rec.db.generation  # not re-written
    monkeypatch.setattr(faiss_store, "MERGE_ROWS", 3)
    with Recommender.open(live_rec.index_dir) as reopened:
        assert {r.id for r in reopened.recommend(DRESS, k=3)} == {"cli-0", "cli-1", "cli-2"}
    assert faiss_store.read_file(path, payload=False)[0]["generation"] == live_rec.db.generation
