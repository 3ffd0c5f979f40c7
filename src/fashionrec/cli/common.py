"""Options shared by several sub-commands, so each is spelled and defaulted the same way everywhere."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from fashionrec.config import env_default

if TYPE_CHECKING:
    from fashionrec.recommend import Recommender


def add_index_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--index-dir", default=env_default("FASHIONREC_INDEX_DIR"),
        help="index directory (env FASHIONREC_INDEX_DIR, default: %(default)s)",
    )


def add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--filter", action="append", default=[], metavar="KEY=V1[,V2]",
        help="keep only items whose KEY is one of the values; repeat for several columns (AND)",
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """Where the searched vectors live: the FAISS file in the index dir (default) or a Milvus collection."""
    parser.add_argument(
        "--store", choices=["faiss", "milvus"], default=env_default("FASHIONREC_STORE"),
        help="vector store (env FASHIONREC_STORE, default: %(default)s); "
        "SQLite in the index dir stays the source of truth",
    )
    parser.add_argument(
        "--milvus-uri", default=env_default("FASHIONREC_MILVUS_URI"),
        help="Milvus server (http://HOST:19530) or Milvus Lite file (./milvus.db) (env FASHIONREC_MILVUS_URI)",
    )
    parser.add_argument(
        "--milvus-collection", default=env_default("FASHIONREC_MILVUS_COLLECTION"),
        help="Milvus collection (env FASHIONREC_MILVUS_COLLECTION, default: %(default)s)",
    )


def open_recommender(args: argparse.Namespace) -> Recommender:
    """Open the recommender the parsed options describe (index dir, and the store when another one is chosen)."""
    from fashionrec.recommend import Recommender

    if getattr(args, "store", "faiss") == "milvus":
        from fashionrec.stores.milvus_store import MilvusStore

        store = MilvusStore.for_index(args.index_dir, args.milvus_uri, args.milvus_collection)
        return Recommender.open(args.index_dir, store=store)
    return Recommender.open(args.index_dir)
