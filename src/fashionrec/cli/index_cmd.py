"""``fashionrec index CATALOG_DIR``: build or incrementally update an index."""

from __future__ import annotations

import argparse
import json
import sys

from fashionrec.cli.common import add_index_dir, add_json
from fashionrec.config import env_default
from fashionrec.embedders import available_models
from fashionrec.indexing import index_catalog
from fashionrec.modelspec import ModelSpec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="index a catalogue folder (incremental, resumable)")
    p.add_argument("catalog_dir", help="folder with the images (and the metadata CSV, unless --metadata)")
    p.add_argument("--metadata", help="metadata CSV (default: styles.csv or metadata.csv in CATALOG_DIR)")
    add_index_dir(p)
    p.add_argument("--model", default=env_default("FASHIONREC_MODEL"), choices=available_models(),
                   help="backbone (env FASHIONREC_MODEL, default: %(default)s)")
    p.add_argument("--image-size", type=int, help="model input side in px (default: the model's own)")
    p.add_argument("--weights", help="weights file for the backbone (required for resnet50)")
    p.add_argument("--id-column", default="id", help="id column of the CSV (default: %(default)s)")
    p.add_argument("--image-pattern", default="images/{id}.jpg",
                   help="image path relative to CATALOG_DIR, formatted with the row (default: %(default)s)")
    p.add_argument("--columns", help="comma-separated metadata columns to keep (default: all)")
    p.add_argument("--batch-size", type=int, default=int(env_default("FASHIONREC_BATCH_SIZE")))
    p.add_argument("--index-kind", default="auto", choices=["auto", "flat", "hnsw", "ivf"],
                   help="FAISS index: exact (flat) or approximate; auto picks by catalogue size")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = index_catalog(
        args.catalog_dir,
        args.index_dir,
        metadata=args.metadata,
        id_column=args.id_column,
        image_pattern=args.image_pattern,
        columns=[c.strip() for c in args.columns.split(",")] if args.columns else None,
        model=ModelSpec(args.model, args.image_size, args.weights),
        batch_size=args.batch_size,
        index_kind=args.index_kind,
        progress=sys.stderr.isatty() or not args.json,
    )
    print(json.dumps(result.to_dict()) if args.json else result.summary())
    return 0
