"""Live writes to an open index: a writer that missed another one's write rebuilds from the database."""

from __future__ import annotations

from fashionrec import live
from fashionrec.recommend import Recommender
from tests.conftest import PHOTOS


def test_a_writer_that_missed_another_ones_write_rebuilds_with_its_photos(live_rec: Recommender) -> None:
    photos = [live.embed_photo(live_rec, p) for p in PHOTOS]
    with Recommender.open(live_rec.index_dir) as other:
        live.put_item(other, "multi", photos, {})
    live.put_item(live_rec, "single", photos[0], {})  # live_rec's store is two generations behind now: rebuilt from SQLite
    assert [(r.id, r.photo) for r in (live_rec.recommend(p, k=2)[0] for p in PHOTOS[1:])] == [("multi", 1), ("multi", 2)]
    assert len(live_rec) == 22
