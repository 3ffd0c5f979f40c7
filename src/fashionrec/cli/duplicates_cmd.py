"""``fashionrec duplicates``: groups of products whose photos are the same or nearly the same."""

from __future__ import annotations

import argparse
import json

from fashionrec.cli.common import add_index_dir, add_json
from fashionrec.duplicates import DEFAULT_THRESHOLD


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "duplicates", help="list groups of products whose photos are the same or nearly the same",
        description="Compare every product's stored vector with every other (exact FAISS range search) and list "
        "the groups linked by a cosine of at least --threshold: the same product listed twice, usually.")
    add_index_dir(p)
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, metavar="COSINE",
                   help="smallest cosine between two products' vectors that makes them duplicates, in (0, 1] "
                   "(default: %(default)s; how it was chosen: docs/live-catalogue.md)")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fashionrec.duplicates import check_threshold, find_duplicates

    threshold = check_threshold(args.threshold)
    groups = find_duplicates(args.index_dir, threshold)
    if args.json:
        print(json.dumps({"threshold": threshold, "groups": [g.to_dict() for g in groups]}))
        return 0
    if not groups:
        print(f"no duplicates at cosine >= {threshold}")
    for group in groups:
        print(f"{len(group.ids)} products, cosine {group.min_cosine:.4f}-{group.max_cosine:.4f}: "
              + " ".join(group.ids))
    return 0
