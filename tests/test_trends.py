"""Catalogue trends (compute_trends): the demo catalogue's charts, and columns a catalogue lacks skipped."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from fashionrec.catalog_db import CatalogDB
from fashionrec.columns import ColumnRoles, write_roles
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
    }, {  # its colour column (fashionrec.columns: "colour" is a usual name of the colour) is charted as colours
        "column": "colour", "title": "Top 10 colours", "other": 0, "missing": 0,
        "counts": [{"value": "Red", "count": 2}, {"value": "Blue", "count": 1}],
    }]}


def test_compute_trends_charts_the_recorded_label(tmp_path: Path) -> None:
    db = CatalogDB(tmp_path, create=True)
    db.sync([("1", "a.jpg", "d1", {"kind": "hat", "colour": "Red"}), ("2", "b.jpg", "d2", {"kind": "hat", "colour": ""})],
            ["kind", "colour"])
    write_roles(db, ColumnRoles(label="kind"))  # no colour recorded: no colour chart
    trends = compute_trends(db)
    db.close()
    assert trends["charts"] == [{"column": "kind", "title": "By kind", "other": 0, "missing": 0,
                                 "counts": [{"value": "hat", "count": 2}]}]
