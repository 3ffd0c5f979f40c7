"""Options shared by several sub-commands, so each is spelled and defaulted the same way everywhere."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from fashionrec.config import env_default

if TYPE_CHECKING:
    from fashionrec.recommend import Recommender
    from fashionrec.result import Result


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


def add_ranking_options(parser: argparse.ArgumentParser) -> None:
    """How the image-similarity candidates are re-ranked by metadata (see fashionrec.hybrid)."""
    parser.add_argument("--hybrid-weight", type=float, default=None,
                        help="weight of the --prefer preferences against image similarity "
                        f"(env FASHIONREC_HYBRID_WEIGHT, default: {env_default('FASHIONREC_HYBRID_WEIGHT')})")
    parser.add_argument("--consensus", type=float, default=None, metavar="WEIGHT",
                        help="weight of the nearest neighbours' vote on the query's label (the index's label "
                        "column, e.g. articleType): more results of "
                        "the kind the query most likely is, less variety; 0.5 measured best, 0 is off "
                        f"(env FASHIONREC_CONSENSUS_WEIGHT, default: {env_default('FASHIONREC_CONSENSUS_WEIGHT')})")
    parser.add_argument("--consensus-column", default=None, metavar="COLUMN",
                        help="the column the neighbours vote on (env FASHIONREC_CONSENSUS_COLUMN, default: the "
                        "index's label column)")


def add_localise(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--localise", action=argparse.BooleanOptionalAction, default=None,
                        help="crop query photos to the garment before embedding them (fashionrec.localise) "
                        f"(env FASHIONREC_LOCALISE=0/1, default: {env_default('FASHIONREC_LOCALISE')})")


def apply_localise(args: argparse.Namespace, rec: Recommender) -> None:
    """``--localise`` / ``--no-localise`` over ``FASHIONREC_LOCALISE`` (read into the RankingConfig ``rec`` was opened with)."""
    if args.localise is not None:
        rec.localise = args.localise


def apply_ranking_options(args: argparse.Namespace, rec: Recommender) -> None:
    """Set the parsed ranking options on ``rec`` (flags over environment), checked: a bad one is a clear error."""
    from fashionrec.hybrid import check_consensus_column, parse_weight

    if args.hybrid_weight is not None:
        rec.hybrid_weight = parse_weight(args.hybrid_weight)
    if args.consensus is not None:
        rec.consensus_weight = parse_weight(args.consensus, "consensus weight")
    if args.consensus_column is not None:
        rec.consensus_column = args.consensus_column
    if rec.consensus_weight:
        check_consensus_column(rec.vote_column, rec.columns)


def open_recommender(args: argparse.Namespace) -> Recommender:
    """Open the recommender the parsed options describe (index dir, and the store when another one is chosen)."""
    from fashionrec.ranking import RankingConfig
    from fashionrec.recommend import Recommender

    ranking = RankingConfig.from_env()  # the FASHIONREC_* ranking options, read here at the edge only
    if getattr(args, "store", "faiss") == "milvus":
        from fashionrec.stores.milvus_store import MilvusStore

        store = MilvusStore.open(args.milvus_uri, args.milvus_collection)
        return Recommender.open(args.index_dir, store=store, ranking=ranking)
    return Recommender.open(args.index_dir, ranking=ranking)


def result_lines(results: Sequence[Result], indent: str = "  ") -> list[str]:
    """One text line per result: rank, id, score and the product's name (or its metadata when it has none)."""
    lines = []
    for rank, r in enumerate(results, 1):
        m = r.metadata
        label = m.get("productDisplayName") or " ".join(str(v) for v in m.values())
        lines.append(f"{indent}{rank:>2}. {r.id:<10} {r.score:6.3f}  {label}")
    return lines


def sheet_target(sheet: str, n: int, count: int) -> str:
    """Where the contact sheet of the ``n``-th (0-based) of ``count`` photos goes: ``sheet`` itself for one photo,
    else ``sheet`` with a ``-N`` suffix (1-based) before ``.png``."""
    return sheet if count == 1 else sheet.replace(".png", f"-{n + 1}.png")


def each_photo(images: Sequence[str], answer: Callable[[int, str], None]) -> int:
    """Call ``answer(n, photo)`` for every photo; a user mistake on one photo is reported on stderr as one line
    and skipped (the others still get answers). The exit status: 2 when any photo failed, else 0."""
    from fashionrec.errors import FashionrecError

    failures = 0
    for n, image in enumerate(images):
        try:
            answer(n, image)
        except FashionrecError as exc:
            print(f"fashionrec: error: {image}: {exc}", file=sys.stderr)
            failures += 1
    return 2 if failures else 0
