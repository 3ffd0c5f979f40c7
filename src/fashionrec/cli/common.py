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


def open_recommender(args: argparse.Namespace) -> Recommender:
    """Open the recommender the parsed options describe (index dir, and the store when another one is chosen)."""
    from fashionrec.recommend import Recommender

    return Recommender.open(args.index_dir)
