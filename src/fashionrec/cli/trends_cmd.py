"""``fashionrec trends``: the catalogue's category, colour, season, year and gender counts as JSON and PNG charts.

The numbers come from :func:`fashionrec.trends.compute_trends`, the same function behind ``GET /api/trends`` and
the web page's charts, so the three never disagree.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fashionrec.catalog_db import CatalogDB
from fashionrec.cli.common import add_index_dir, add_json
from fashionrec.trends import compute_trends


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trends", help="catalogue statistics: categories, top colours, seasons, years, gender")
    add_index_dir(p)
    add_json(p)
    p.add_argument("--out", metavar="DIR", help="write trends.json and one PNG chart per column into DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    db = CatalogDB(Path(args.index_dir))
    try:
        trends = compute_trends(db)
    finally:
        db.close()
    if args.out:
        from fashionrec.charts import bar_chart

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "trends.json").write_text(json.dumps(trends, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        for chart in trends["charts"]:
            counts = chart["counts"] + ([{"value": "other", "count": chart["other"]}] if chart["other"] else [])
            bar_chart(out / f"{chart['column']}.png", f"{chart['title']} ({trends['items']} products)",
                      [c["value"] for c in counts], {"products": [c["count"] for c in counts]})
    if args.json:
        print(json.dumps(trends, ensure_ascii=False))
    else:
        print(f"{trends['items']} products")
        for chart in trends["charts"]:
            shown = ", ".join(f"{c['value']} {c['count']}" for c in chart["counts"])
            print(f"{chart['title']}: {shown}" + (f", other {chart['other']}" if chart["other"] else ""))
    return 0
