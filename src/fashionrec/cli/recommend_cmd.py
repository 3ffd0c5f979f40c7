"""``fashionrec recommend IMAGE...``: top-k similar catalogue products for each photo, optionally steered by a crop
box, liked / disliked products and a column to differ in; with ``--like`` and no photo, the examples are the query."""

from __future__ import annotations

import argparse
import json

from fashionrec.cli.common import (
    add_filters,
    add_index_dir,
    add_json,
    add_localise,
    add_ranking_options,
    add_store_options,
    apply_localise,
    apply_ranking_options,
    each_photo,
    open_recommender,
    result_lines,
    sheet_target,
)
from fashionrec.errors import FashionrecError
from fashionrec.feedback import DEFAULT_METHOD, MAX_EXAMPLES, METHODS, check_examples, parse_box
from fashionrec.filters import parse_filters
from fashionrec.hybrid import parse_preferences
from fashionrec.recommend import Result


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recommend", help="recommend similar products for one or more photos")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="query photos (none: the --like products are the query)")
    add_index_dir(p)
    add_store_options(p)
    p.add_argument("-k", type=int, default=5, help="results per photo (default: %(default)s)")
    add_filters(p)
    p.add_argument("--prefer", action="append", default=[], metavar="KEY=VALUE",
                   help="soft preference: agreeing products move up, others stay (hybrid ranking); repeatable")
    add_ranking_options(p)
    steer = p.add_argument_group("steering (fashionrec.feedback)")
    steer.add_argument("--box", metavar="X,Y,W,H",
                       help="search only this region of each photo: pixels, or fractions when all are at most 1")
    steer.add_argument("--like", action="append", default=[], metavar="ID",
                       help=f"a catalogue product to move toward (never returned); repeatable, at most {MAX_EXAMPLES}")
    steer.add_argument("--unlike", action="append", default=[], metavar="ID",
                       help=f"a catalogue product to move away from (never returned); repeatable, at most {MAX_EXAMPLES}")
    steer.add_argument("--differ", metavar="COLUMN",
                       help="only products whose COLUMN differs from the liked products' (e.g. baseColour)")
    steer.add_argument("--feedback-method", choices=METHODS, default=None,
                       help=f"how --like/--unlike steer the query (default: {DEFAULT_METHOD})")
    add_localise(p)
    add_json(p)
    p.add_argument("--sheet", metavar="PNG", help="also save a contact sheet (query + results) per photo; "
                   "with several photos, PNG gets a -N suffix")
    p.set_defaults(func=run)


def _table(query: str, results: list[Result]) -> str:
    return "\n".join([f"{query}:", *result_lines(results)])


def _print(args: argparse.Namespace, query: str, results: list[Result]) -> None:
    if args.json:
        print(json.dumps({"query": query, "results": [r.to_dict() for r in results]}, ensure_ascii=False))
    else:
        print(_table(query, results))


def run(args: argparse.Namespace) -> int:
    with open_recommender(args) as rec:
        filters = parse_filters(args.filter, rec.columns)
        prefer = parse_preferences(args.prefer, rec.columns)
        apply_ranking_options(args, rec)
        apply_localise(args, rec)
        examples = check_examples(args.like, args.unlike)
        rec.example_vectors(examples)  # an unknown id is one error, not one per photo
        if args.box is not None:
            parse_box(args.box)
        if args.feedback_method:
            rec.feedback_method = args.feedback_method
        if not args.images:
            if not examples.like:
                raise FashionrecError("give a photo, or the products to start from with --like")
            if args.box is not None:
                raise FashionrecError("--box needs a photo")
            results = rec.recommend_examples(examples.like, examples.unlike, args.k, filters, prefer=prefer,
                                             differ=args.differ)
            _print(args, "examples", results)
            return 0

        def answer(n: int, image: str) -> None:
            results = rec.recommend(image, k=args.k, filters=filters, prefer=prefer, box=args.box,
                                    like=examples.like, unlike=examples.unlike, differ=args.differ)
            _print(args, image, results)
            if args.sheet:
                from fashionrec.contact_sheet import save_contact_sheet

                save_contact_sheet(image, results, rec.db, sheet_target(args.sheet, n, len(args.images)))

        return each_photo(args.images, answer)
