"""``fashionrec search "QUERY"``: catalogue products matching a text, with the same filters as photo search."""

from __future__ import annotations

import argparse
import json

from fashionrec.cli.common import add_filters, add_index_dir, add_json
from fashionrec.cli.recommend_cmd import _table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="find products by text (needs `train-text` or a CLIP model)")
    p.add_argument("query", help='what to look for, e.g. "red floral summer dress"')
    add_index_dir(p)
    p.add_argument("-k", type=int, default=5, help="results (default: %(default)s)")
    add_filters(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fashionrec.filters import parse_filters
    from fashionrec.text.searcher import TextSearcher, check_query

    query = check_query(args.query)  # before loading anything: an empty query fails at once
    with TextSearcher.open(args.index_dir) as searcher:
        results = searcher.search(query, k=args.k, filters=parse_filters(args.filter, searcher.columns))
    if args.json:
        print(json.dumps({"query": query, "results": [r.to_dict() for r in results]}, ensure_ascii=False))
    else:
        print(_table(query, results))
    return 0
