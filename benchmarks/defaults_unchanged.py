"""Myntra's defaults before and after a change: the same quality protocol run by two versions of fashionrec.

    nice .venv/bin/python benchmarks/defaults_unchanged.py --index INDEX_DIR --name NAME
    PYTHONPATH=OLD_CHECKOUT/src .venv/bin/python benchmarks/defaults_unchanged.py --index OLD_INDEX --name NAME

Run once with the current sources on an index they built, once with an older checkout's sources on an index that
checkout built from the same catalogue CSV (the 8,000-product sample of benchmarks/street_look.py). Both runs use
fashionrec.evaluate as the README's quality figures do (exact search, no head, no kind steering, which only plain
photo queries get): the photos of ``clothing-photos/test`` and ``validation`` (never trained on) query the whole
index, and a seeded sample of products queries it leave-one-out. Writes benchmarks/results/NAME.json with the
version of the sources that ran.
"""

from __future__ import annotations

import argparse
import random
import subprocess
from pathlib import Path

import fashionrec
from _common import SHARED, machine, print_table, run_main, write_results
from fashionrec.evaluate import catalogue_queries, evaluate, photo_queries, searchable_subset, searched_ids
from fashionrec.recommend import Recommender

try:  # where load_mapping lives depends on the version under test
    from fashionrec.columns import load_mapping
except ImportError:
    from fashionrec.evaluate import load_mapping  # type: ignore[attr-defined,no-redef]

KEYS = ("hit@5", "P@5", "P@5_type_colour")


def main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    source = Path(fashionrec.__file__).resolve().parent
    commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=False).stdout.strip()
    mapping = load_mapping(SHARED / "mapping.json")
    runs = {}
    with Recommender.open(args.index) as rec:
        exact = searchable_subset(rec, None, None)
        for folder in ("test", "validation"):
            queries = photo_queries(rec, SHARED / "clothing-photos" / folder, mapping, None, progress=False)
            runs[f"photos {folder}"] = {"queries": len(queries), **{k: v for k, v in evaluate(
                exact, queries, progress=False)["metrics"].items() if k in KEYS}}
        ids = random.Random(0).sample(sorted(searched_ids(rec)), args.sample)
        runs["leave-one-out products"] = {"queries": len(ids), **{k: v for k, v in evaluate(
            exact, catalogue_queries(rec, ids, None), progress=False)["metrics"].items() if k in KEYS}}
    data = {"machine": machine(), "index": str(args.index), "sources": str(source), "commit": commit, "runs": runs}
    print_table(["queries", "n", *KEYS], [[n, r["queries"], *(r.get(k, "-") for k in KEYS)] for n, r in runs.items()],
                json_mode=args.json)
    write_results(args.name, data, echo=args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
