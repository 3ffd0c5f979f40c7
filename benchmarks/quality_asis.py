"""Quality of an index's backbone features as they are (no head), with benchmarks/quality.py's protocol: a quick
check of an embedding change (e.g. another ``--image-size``) that needs no head training.

    nice .venv/bin/python benchmarks/quality_asis.py --index-dir FULL_INDEX [--max-queries 1000] --name NAME

Held-out products: the 10 % of the index's products that ``fashionrec.split`` (seed 0) holds out, a seeded sample of
``--max-queries`` of them (as ``quality.py --max-queries``), each searched against the other 90 % (exact search).
Photos: ``clothing-photos/{test,validation}`` against the whole catalogue. Writes benchmarks/results/NAME.json.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

from _common import SHARED, machine, print_table, run_main, write_results
from fashionrec.columns import load_mapping
from fashionrec.evaluate import catalogue_queries, evaluate, photo_queries, searchable_subset
from fashionrec.recommend import Recommender
from fashionrec.split import holdout_mask


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--max-queries", type=int, default=1000, help="seeded sample of the held-out products")
    parser.add_argument("--photos", type=Path, default=SHARED / "clothing-photos")
    parser.add_argument("--mapping", type=Path, default=SHARED / "mapping.json")
    parser.add_argument("--name", required=True, help="results file: benchmarks/results/NAME.json")
    parser.add_argument("--note", default="")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    started = time.time()
    rows: list[dict[str, Any]] = []
    with Recommender.open(args.index_dir) as rec:
        ids = list(rec.store.ids)
        held = sorted(i for i, h in zip(ids, holdout_mask(ids, 0.1, 0), strict=True) if h)
        sample = sorted(random.Random(0).sample(held, min(args.max_queries, len(held)))) if args.max_queries else held
        keep = set(ids) - set(held)
        result = evaluate(searchable_subset(rec, keep, None), catalogue_queries(rec, sample, None))
        rows.append({"set": "catalogue held-out", "method": "backbone as-is", **result})
        mapping = load_mapping(args.mapping)
        for split in ("test", "validation"):
            queries = photo_queries(rec, args.photos / split, mapping, None)
            rows.append({"set": f"photos {split}", "method": "backbone as-is",
                         **evaluate(searchable_subset(rec, None, None), queries)})
        model = rec.store.model
    print_table(["queries", "n", "P@5", "hit@5", "type+colour P@5"],
                [[r["set"], r["queries"], f"{r['metrics']['P@5']:.3f}", f"{r['metrics'].get('hit@5', 0):.3f}",
                  f"{r['metrics'].get('P@5_type_colour', 0):.3f}"] for r in rows], json_mode=args.json)
    write_results(args.name, {"benchmark": "quality_asis", "index_dir": str(args.index_dir), "model": model,
                              "rows": rows, "machine": machine(), "note": args.note,
                              "seconds": round(time.time() - started)}, echo=args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
