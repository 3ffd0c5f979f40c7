"""What kind steering does to queries that are not street crops: garments photographed alone and catalogue products.

    nice .venv/bin/python benchmarks/kind_steering.py --index INDEX_DIR [--photos DIR ...] [--limit N]
        [--min-share S] [--max-kinds N] [--neighbour-weight W] [--neighbours N]

Runs every query twice through the same index, kind steering off and on (fashionrec.kinds): the photos of
``clothing-photos/test`` and ``validation`` (a folder per class, relevance by ``mapping.json``; never trained on),
and the catalogue products of the index that fashionrec.split holds out (10 %, seed 0; the fashion model and the
kind classifier never trained on them), each excluded from its own results and from the nearest products' vote on
its kind, relevant when of the same articleType.
hit@5 and P@5 per query set; how often the classifier steered, and how often to a wrong class. Writes
benchmarks/results/<name>.json.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from _common import SHARED, add_kind_rule_options, apply_kind_rule, machine, print_table, run_main, write_results
from fashionrec.columns import load_mapping
from fashionrec.evaluate import IMAGE_SUFFIXES
from fashionrec.feedback import check_examples
from fashionrec.garments import load_classes
from fashionrec.imageio import load_image
from fashionrec.kinds import OTHER
from fashionrec.recommend import Recommender
from fashionrec.split import is_held_out

NO_EXAMPLES = check_examples((), ())


def _run(rec: Recommender, queries: list[tuple[Any, set[str], str | None]], steer: bool) -> dict[str, float]:
    rec.ranking = replace(rec.ranking, steer_kind=steer)
    hits, precisions, steered = [], [], 0
    for image, relevant, exclude in tqdm(queries, desc=f"steer {'on' if steer else 'off'}", unit="q"):
        batch = rec.encoder.preprocess([rec.encoder.prepare(load_image(image))])
        vectors, kinds = rec.encode_queries(batch, exclude={exclude} if exclude else None)  # nor votes for itself
        steered += bool(kinds[0]) and kinds[0][0][0] != OTHER
        results = rec.steer_kinds(vectors[0], kinds[0], 5, {}, NO_EXAMPLES, exclude={exclude} if exclude else None)
        flags = [r.metadata.get("articleType") in relevant for r in results[:5]]
        hits.append(float(any(flags)))
        precisions.append(sum(flags) / 5)
    return {"queries": len(queries), "hit@5": round(float(np.mean(hits)), 4), "P@5": round(float(np.mean(precisions)), 4),
            "steered": round(steered / len(queries), 4)}


def main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--photos", type=Path, nargs="*", default=[SHARED / "clothing-photos" / "test",
                                                                    SHARED / "clothing-photos" / "validation"])
    parser.add_argument("--mapping", type=Path, default=SHARED / "mapping.json")
    parser.add_argument("--catalogue", type=Path, default=SHARED / "catalogue")
    parser.add_argument("--limit", type=int, default=0, help="at most this many catalogue queries (0 = all)")
    parser.add_argument("--name", default="kind_steering")
    add_kind_rule_options(parser)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    mapping = load_mapping(args.mapping)
    classes = load_classes()
    sets: dict[str, list[tuple[Any, set[str], str | None]]] = {}
    for folder in args.photos:
        sets[folder.name] = [(p, set(mapping[c.name]), None) for c in sorted(folder.iterdir()) if c.name in mapping
                             for p in sorted(c.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    out: dict[str, Any] = {"machine": machine(), "index": str(args.index), "classes_column": classes.column}
    with Recommender.open(args.index) as rec:
        out["kind_rule"] = apply_kind_rule(rec, args)
        held = [i for i in rec.db.iter_items() if is_held_out(i.id, 0.1, 0)]
        held = held[: args.limit] if args.limit else held
        sets["held-out products"] = [(args.catalogue / "images" / f"{i.id}.jpg", {i.metadata["articleType"]}, i.id)
                                     for i in held]
        out["index_products"] = len(rec)
        out["sets"] = {name: {"off": _run(rec, queries, False), "on": _run(rec, queries, True)}
                       for name, queries in sets.items()}
    rows = [[name, r["off"]["queries"], r["off"]["hit@5"], r["on"]["hit@5"], r["off"]["P@5"], r["on"]["P@5"],
             r["on"]["steered"]] for name, r in out["sets"].items()]
    print_table(["queries", "n", "hit@5 off", "hit@5 on", "P@5 off", "P@5 on", "steered"], rows, json_mode=args.json)
    write_results(args.name, out, echo=args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
