"""``fashionrec recommend IMAGE...``: top-k similar catalogue products for each photo."""

from __future__ import annotations

import argparse
import json
import sys

from fashionrec.cli.common import (
    add_filters,
    add_index_dir,
    add_json,
    add_localise,
    add_ranking_options,
    add_store_options,
    apply_localise,
    apply_ranking_options,
    open_recommender,
)
from fashionrec.errors import FashionrecError
from fashionrec.filters import parse_filters
from fashionrec.hybrid import parse_preferences
from fashionrec.recommend import Result


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recommend", help="recommend similar products for one or more photos")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    add_index_dir(p)
    add_store_options(p)
    p.add_argument("-k", type=int, default=5, help="results per photo (default: %(default)s)")
    add_filters(p)
    p.add_argument("--prefer", action="append", default=[], metavar="KEY=VALUE",
                   help="soft preference: agreeing products move up, others stay (hybrid ranking); repeatable")
    add_ranking_options(p)
    add_localise(p)
    add_json(p)
    p.add_argument("--sheet", metavar="PNG", help="also save a contact sheet (query + results) per photo; "
                   "with several photos, PNG gets a -N suffix")
    p.set_defaults(func=run)


def _table(query: str, results: list[Result]) -> str:
    lines = [f"{query}:"]
    for rank, r in enumerate(results, 1):
        m = r.metadata
        label = m.get("productDisplayName") or " ".join(str(v) for v in m.values())
        lines.append(f"  {rank:>2}. {r.id:<10} {r.score:6.3f}  {label}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    failures = 0
    with open_recommender(args) as rec:
        filters = parse_filters(args.filter, rec.columns)
        prefer = parse_preferences(args.prefer, rec.columns)
        apply_ranking_options(args, rec)
        apply_localise(args, rec)
        for n, image in enumerate(args.images):
            try:
                results = rec.recommend(image, k=args.k, filters=filters, prefer=prefer)
            except FashionrecError as exc:
                # One bad photo among many is reported and skipped; the others still get answers.
                print(f"fashionrec: error: {image}: {exc}", file=sys.stderr)
                failures += 1
                continue
            if args.json:
                print(json.dumps({"query": image, "results": [r.to_dict() for r in results]}, ensure_ascii=False))
            else:
                print(_table(image, results))
            if args.sheet:
                from fashionrec.contact_sheet import save_contact_sheet

                target = args.sheet if len(args.images) == 1 else args.sheet.replace(".png", f"-{n + 1}.png")
                save_contact_sheet(image, results, rec.db, target)
    return 2 if failures else 0
