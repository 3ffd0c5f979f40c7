"""Catalogue trends (compute_trends): the demo catalogue's charts, and columns a catalogue lacks skipped."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from fashionrec.catalog_db import CatalogDB
from fashionrec.recommend import Recommender
from fashionrec.trends import compute_trends
from tests.conftest import demo_rows


def test_compute_trends_on_the_demo_catalogue(demo_recommender: Recommender) -> None:
    trends = compute_trends(demo_recommender.db)
    charts = {c["column"]: c for c in trends["charts"]}
    rows = list(demo_rows().values())
    assert trends["items"] == 300
    assert list(charts) == ["masterCategory", "subCategory", "articleType", "baseColour", "season", "year", "gender"]
    for chart in charts.values():
        assert sum(c["count"] for c in chart["counts"]) + chart["other"] + chart["missing"] == 300
    colours = Counter(r["baseColour"] for r in rows)
    assert [(c["value"], c["count"]) for c in charts["baseColour"]["counts"]] == colours.most_common(10)
    assert [c["value"] for c in charts["year"]["counts"]] == sorted({r["year"] for r in rows if r["year"]}, key=int)
    assert {c["value"]: c["count"] for c in charts["gender"]["counts"]} == dict(Counter(r["gender"] for r in rows))


def test_compute_trends_skips_columns_the_catalogue_lacks(tmp_path: Path) -> None:
    db = CatalogDB(tmp_path, create=True)
    rows = [("1", "a.jpg", "d1", {"gender": "Women", "colour": "Red"}),
            ("2", "b.jpg", "d2", {"gender": "", "colour": "Red"}),
            ("3", "c.jpg", "d3", {"gender": "Men", "colour": "Blue"})]
    db.sync(rows, ["gender", "colour"])
    trends = compute_trends(db)
    db.close()
    assert trends == {"items": 3, "charts": [{
        "column": "gender", "title": "Gender split", "other": 0, "missing": 1,
        "counts": [{"value": "Women", "count": 1}, {"value": "Men", "count": 1}],
    }]}
