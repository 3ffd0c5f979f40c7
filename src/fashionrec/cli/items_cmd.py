"""``fashionrec add`` / ``fashionrec remove``: change one product of an index, as the items API does.

A running ``fashionrec serve`` on the same index picks the change up by itself. A later ``fashionrec index`` of
the catalogue folder makes the index match the folder again (the folder wins).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fashionrec.cli.common import add_index_dir, add_json
from fashionrec.config import env_default
from fashionrec.errors import FashionrecError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("add", help="add a product to an index, or replace it (photos and metadata)")
    p.add_argument("item_id", metavar="ID", help="product id (letters, digits, '.', '_', '-')")
    p.add_argument("photos", metavar="PHOTO", nargs="+",
                   help="the product's photos, 1 to 8 (JPEG, PNG, WebP, GIF or BMP); it is found by its best match")
    p.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                   help="a metadata column of the index; repeat for several (columns not given are empty)")
    add_index_dir(p)
    add_json(p)
    p.set_defaults(func=run_add)
    p = sub.add_parser("remove", help="remove a product from an index")
    p.add_argument("item_id", metavar="ID", help="product id")
    add_index_dir(p)
    add_json(p)
    p.set_defaults(func=run_remove)


def parse_meta(specs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not key.strip():
            raise FashionrecError(f"bad --meta {spec!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def run_add(args: argparse.Namespace) -> int:
    from fashionrec import live
    from fashionrec.recommend import Recommender

    metadata = parse_meta(args.meta)
    if len(args.photos) > live.MAX_PHOTOS:
        raise FashionrecError(f"photos: a product has 1 to {live.MAX_PHOTOS} photos, got {len(args.photos)}")
    data = [Path(photo).read_bytes() for photo in args.photos]
    max_pixels = int(env_default("FASHIONREC_MAX_PIXELS").strip())
    with Recommender.open(args.index_dir) as rec:
        live.check_item_id(args.item_id)
        live.check_metadata(metadata, rec.columns)
        photos = [live.embed_photo(rec, d, max_pixels=max_pixels) for d in data]
        item = live.put_item(rec, args.item_id, photos, metadata)
        total = len(rec)
    _report(args, {"id": item.id, "action": "put", "photos": len(photos), "items": total, "metadata": item.metadata},
            f"added {item.id}; the index has {total} products")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from fashionrec import live
    from fashionrec.recommend import Recommender

    with Recommender.open(args.index_dir) as rec:
        live.delete_item(rec, args.item_id)
        total = len(rec)
    _report(args, {"id": args.item_id, "action": "remove", "items": total},
            f"removed {args.item_id}; the index has {total} products")
    return 0


def _report(args: argparse.Namespace, data: dict[str, object], line: str) -> None:
    print(json.dumps(data) if args.json else line)
