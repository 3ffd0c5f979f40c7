"""``fashionrec index CATALOG_DIR``: build or incrementally update an index."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict

from fashionrec.cli.common import add_index_dir, add_json, add_store_options
from fashionrec.config import env_default
from fashionrec.embedders import available_models
from fashionrec.errors import FashionrecError
from fashionrec.indexing import index_catalog
from fashionrec.modelspec import PRECISIONS, ModelSpec
from fashionrec.stores.budget import Budget, parse_recall, parse_size
from fashionrec.stores.faiss_store import KINDS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="index a catalogue folder (incremental, resumable)")
    p.add_argument("catalog_dir", help="folder with the images (and the metadata CSV, unless --metadata)")
    p.add_argument("--metadata", help="metadata CSV (default: styles.csv or metadata.csv in CATALOG_DIR)")
    add_index_dir(p)
    p.add_argument("--model", default=env_default("FASHIONREC_MODEL"), choices=available_models(),
                   help="backbone (env FASHIONREC_MODEL, default: %(default)s)")
    p.add_argument("--image-size", type=int, help="model input side in px (default: the model's own)")
    p.add_argument("--weights", help="weights file for the backbone (required for resnet50)")
    p.add_argument("--precision", choices=PRECISIONS, default=env_default("FASHIONREC_PRECISION"),
                   help="numbers the network computes with: int8 is faster on CPUs with VNNI/AMX, "
                   "at a small cost in quality (measured in docs/models.md) (env FASHIONREC_PRECISION, default: %(default)s)")
    p.add_argument("--id-column", default="id", help="id column of the CSV (default: %(default)s)")
    p.add_argument("--image-pattern", default="images/{id}.jpg",
                   help="image path relative to CATALOG_DIR, formatted with the row (default: %(default)s)")
    p.add_argument("--columns", help="comma-separated metadata columns to keep (default: all)")
    p.add_argument("--label", metavar="COLUMN",
                   help="the column that says which products are the same kind (what `train` learns, `evaluate` "
                   "judges by and --consensus votes on); recorded in the index, changeable later without re-embedding "
                   "(default: what the index records, else articleType, category, product_type, type or class, the "
                   "first present)")
    p.add_argument("--colour-column", metavar="COLUMN",
                   help="the colour column (default: what the index records, else baseColour, colour or color)")
    p.add_argument("--aux-labels", metavar="A,B",
                   help="further label columns `train` learns beside the label and `evaluate` reports agreement on "
                   "(default: what the index records, else subCategory,gender where present; '' for none)")
    p.add_argument("--batch-size", type=int, default=int(env_default("FASHIONREC_BATCH_SIZE")))
    p.add_argument("--index-kind", default="auto", choices=["auto", *KINDS],
                   help="FAISS index: exact (flat) or approximate; auto picks by catalogue size, or by budget")
    p.add_argument("--max-index-memory", metavar="SIZE",
                   help="largest vector index to build, e.g. 512MB or 2GiB; with --index-kind auto the fastest kind "
                   "that fits is chosen (fashionrec.stores.budget)")
    p.add_argument("--target-recall", metavar="R",
                   help="recall@10 (0-1] to reach, measured after the build on a sample of the catalogue against "
                   "exact search; the search parameter is set to the cheapest that reaches it")
    add_store_options(p)
    p.add_argument("--engine", choices=["local", "ray"], default=env_default("FASHIONREC_ENGINE"),
                   help="where images are embedded: this process, or Ray actors "
                   "(env FASHIONREC_ENGINE, default: %(default)s)")
    p.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS") or None,
                   help="Ray cluster to join, e.g. ray://HEAD:10001 or auto "
                   "(default: Ray's RAY_ADDRESS, else a local Ray on this machine's CPUs)")
    add_json(p)
    p.set_defaults(func=run)


def parse_budget(args: argparse.Namespace) -> Budget | None:
    """The --max-index-memory / --target-recall budget; None when neither is given."""
    if args.max_index_memory is None and args.target_recall is None:
        return None
    return Budget(0 if args.max_index_memory is None else parse_size(args.max_index_memory),
                  0.0 if args.target_recall is None else parse_recall(args.target_recall))


def run(args: argparse.Namespace) -> int:
    budget = parse_budget(args)
    if budget is not None and args.store == "milvus":
        raise FashionrecError("--max-index-memory and --target-recall apply to the FAISS store, not --store milvus")
    spec = ModelSpec(args.model, args.image_size, args.weights, args.precision)
    show_progress = sys.stderr.isatty() or not args.json
    publisher = None
    if args.store == "milvus":
        from fashionrec.publish import MilvusPublisher

        publisher = MilvusPublisher(args.milvus_uri, args.milvus_collection, progress=show_progress)
    engine = None
    if args.engine == "ray":
        from fashionrec.engines.ray_engine import RayEngine

        engine = RayEngine(spec, args.ray_address)
    result = index_catalog(
        args.catalog_dir,
        args.index_dir,
        metadata=args.metadata,
        id_column=args.id_column,
        image_pattern=args.image_pattern,
        columns=[c.strip() for c in args.columns.split(",")] if args.columns else None,
        model=spec,
        batch_size=args.batch_size,
        index_kind=args.index_kind,
        budget=budget,
        progress=show_progress,
        publish=publisher,
        engine=engine,
        label=args.label,
        colour_column=args.colour_column,
        aux_labels=args.aux_labels,
    )
    published = publisher.counts if publisher else None
    if args.json:
        print(json.dumps({**result.to_dict(), **({"milvus": asdict(published)} if published else {})}))
    else:
        print(result.summary() + (f"\n{published.summary()}" if published else ""))
    return 0
