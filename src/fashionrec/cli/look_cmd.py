"""``fashionrec look PHOTO...``: shop the look. The garments found in each photo of a whole outfit, most confident
first, each with its box in the photo and its own top-k catalogue products (:meth:`Recommender.look`)."""

from __future__ import annotations

import argparse
import json

from fashionrec.cli.common import (
    add_filters,
    add_index_dir,
    add_json,
    add_store_options,
    each_photo,
    open_recommender,
    result_lines,
    sheet_target,
)
from fashionrec.errors import FashionrecError
from fashionrec.filters import parse_filters
from fashionrec.look import MAX_GARMENTS, LookGarment


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("look", help="shop the look: the garments in photos of whole outfits, each with its products")
    p.add_argument("images", nargs="+", metavar="PHOTO", help="photos of people wearing outfits")
    add_index_dir(p)
    add_store_options(p)
    p.add_argument("-k", type=int, default=5, help="products per garment (default: %(default)s)")
    add_filters(p)
    p.add_argument("--max-garments", type=int, default=MAX_GARMENTS,
                   help="at most this many garments per photo, the most confident (default: %(default)s)")
    p.add_argument("--steer", action=argparse.BooleanOptionalAction, default=True,
                   help="search each garment among its class's catalogue values (garments.json) unless a --filter "
                   "names that column (default: on)")
    add_json(p)
    p.add_argument("--sheet", metavar="PNG", help="also save a contact sheet per photo: the photo with numbered "
                   "garment boxes and a row of products per garment; with several photos, PNG gets a -N suffix")
    p.set_defaults(func=run)


def _text(query: str, garments: list[LookGarment]) -> str:
    lines = [f"{query}: {len(garments)} garment{'' if len(garments) == 1 else 's'}"]
    for n, g in enumerate(garments, 1):
        x, y, w, h = g.box
        lines.append(f"  [{n}] {g.label} (confidence {g.score:.2f}) at x={x} y={y} w={w} h={h}")
        lines.extend(result_lines(g.results, indent="      "))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.max_garments < 1:
        raise FashionrecError(f"--max-garments must be at least 1, got {args.max_garments}")
    with open_recommender(args) as rec:
        filters = parse_filters(args.filter, rec.columns)

        def answer(n: int, image: str) -> None:
            garments = rec.look(image, k=args.k, filters=filters, max_garments=args.max_garments, steer=args.steer)
            if args.json:
                print(json.dumps({"query": image, "garments": [g.to_dict() for g in garments]}, ensure_ascii=False))
            else:
                print(_text(image, garments))
            if args.sheet:
                from fashionrec.contact_sheet import save_look_sheet

                save_look_sheet(image, garments, rec.db, sheet_target(args.sheet, n, len(args.images)))

        return each_photo(args.images, answer)
