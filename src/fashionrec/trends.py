"""What the catalogue holds, counted: categories, colours, seasons, years and gender.

Shop teams look at these before tuning filters or buying decisions, and the web page draws them as bar charts.
:func:`compute_trends` is pure data (one pass over the index's SQLite catalogue, no plotting, no I/O besides
that read) so that a JSON endpoint, the web page and a PNG renderer can all share it. Columns a catalogue does
not have are simply left out: a shop without seasons gets no season chart instead of an error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fashionrec.catalog_db import CatalogDB
from fashionrec.columns import read_roles


@dataclass(frozen=True)
class TrendChart:
    """One chart: which metadata column it counts, how it is titled, and how many bars it keeps."""

    column: str
    title: str
    limit: int | None = None  # keep the `limit` most frequent values; the rest are summed into "other"
    order: Literal["count", "value"] = "count"  # bars by frequency, or by value (years read left to right)


CHARTS: tuple[TrendChart, ...] = (
    TrendChart("masterCategory", "Master categories"),
    TrendChart("subCategory", "Sub-categories", limit=20),
    TrendChart("articleType", "Article types", limit=25),
    TrendChart("baseColour", "Top 10 colours", limit=10),
    TrendChart("season", "Seasons"),
    TrendChart("year", "Years", order="value"),
    TrendChart("gender", "Gender split"),
)
"""The charts of :func:`compute_trends`, in display order (column names of the Kaggle fashion catalogue)."""


def count_values(rows: Iterable[Mapping[str, str]], columns: Sequence[str]) -> dict[str, Counter[str]]:
    """How often each non-empty value occurs in each of ``columns`` (one pass over ``rows``)."""
    counts: dict[str, Counter[str]] = {c: Counter() for c in columns}
    for row in rows:
        for column, counter in counts.items():
            value = row.get(column, "")
            if value:
                counter[value] += 1
    return counts


def compute_trends(db: CatalogDB) -> dict[str, Any]:
    """Count the catalogue in ``db`` for every chart in :data:`CHARTS` whose column exists, and for its recorded
    label and colour columns (fashionrec.columns) when they have other names.

    Returns ``{"items": N, "charts": [chart, ...]}``, each chart being
    ``{"column", "title", "counts": [{"value", "count"}, ...], "other": int, "missing": int}``: ``counts`` holds
    the kept values (most frequent first, or by value for years), ``other`` the items whose value was cut by the
    chart's limit, ``missing`` the items with an empty value. All products in the catalogue are counted, whether
    or not their image could be embedded.
    """
    charts = [chart for chart in CHARTS if chart.column in db.columns]
    roles = read_roles(db)  # a catalogue's own label and colour columns get the charts Myntra's names would
    charted = {chart.column for chart in charts}
    if roles.label and roles.label not in charted:
        charts.append(TrendChart(roles.label, f"By {roles.label}", limit=25))
    if roles.colour and roles.colour not in charted:
        charts.append(TrendChart(roles.colour, "Top 10 colours", limit=10))
    counts = count_values((item.metadata for item in db.iter_items()), [c.column for c in charts])
    total = db.count()
    return {"items": total, "charts": [_chart(chart, counts[chart.column], total) for chart in charts]}


def _chart(chart: TrendChart, counter: Counter[str], total: int) -> dict[str, Any]:
    kept = counter.most_common(chart.limit)
    if chart.order == "value":
        kept.sort(key=lambda pair: _value_key(pair[0]))
    counted = sum(counter.values())
    return {
        "column": chart.column,
        "title": chart.title,
        "counts": [{"value": value, "count": count} for value, count in kept],
        "other": counted - sum(count for _, count in kept),
        "missing": total - counted,
    }


def _value_key(value: str) -> tuple[int, float, str]:
    """Numbers in numeric order (``"2012.0"`` after ``"2011"``), then everything else alphabetically."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)
