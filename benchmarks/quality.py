"""Recommendation quality on the shared data: backbone as-is vs trained head vs hybrid; real photos as queries.

    nice .venv/bin/python benchmarks/quality.py --index-dir COPY_OF_A_FULL_INDEX [--max-queries N]
        [--photos DIR] [--mapping JSON] [--weights 0.05,0.1,0.2] [--consensus 0.2,0.5] [--name quality]

The index (a full index of the shared catalogue; use a copy, the head is written into it) gets a head trained by
``fashionrec train`` defaults on 90% of the products when it has none yet; the other 10% (the head's held-out
ids) are the catalogue queries, searched against the 90% only (exact search). Rows: P@5 by articleType etc. for
the raw backbone features, the head, and hybrid ranking (the query's own gender and baseColour as soft
preferences) at several weights, and the neighbours' articleType vote (``--consensus``) at several weights. Then
the real photos of ``clothing-photos/{test,validation}`` query the whole
catalogue: hit@5 of a mapped articleType, raw backbone vs head, head with the vote, all by exact search, plus the
head through the index as served (HNSW at 41k). Writes benchmarks/results/NAME.json.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from _common import SHARED, machine, print_table, run_main, write_results
from fashionrec.columns import load_mapping
from fashionrec.evaluate import Query, catalogue_queries, evaluate, photo_queries, searchable_subset
from fashionrec.head import HEAD_FILE, Head
from fashionrec.recommend import Recommender
from fashionrec.train import train_index

PREFER = ("gender", "baseColour")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--max-queries", type=int, default=0, help="seeded sample of the held-out queries (0 = all)")
    parser.add_argument("--photos", type=Path, default=SHARED / "clothing-photos")
    parser.add_argument("--mapping", type=Path, default=SHARED / "mapping.json")
    parser.add_argument("--weights", default="0.05,0.1,0.2", help="hybrid weights to compare")
    parser.add_argument("--consensus", default="0.2,0.5", help="consensus (neighbour vote) weights to compare")
    parser.add_argument("--name", default="quality", help="results file: benchmarks/results/NAME.json")
    parser.add_argument("--no-localise", action="store_true",
                        help="skip the photo rows with query-side garment localisation")
    parser.add_argument("--note", default="")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    started = time.time()
    if not (args.index_dir / HEAD_FILE).exists():
        train_index(args.index_dir)
    rows: list[dict[str, Any]] = []
    with Recommender.open(args.index_dir) as rec:
        model = rec.store.model
        held = rec.head.holdout_ids
        ids = sorted(held)
        if args.max_queries:
            ids = sorted(random.Random(0).sample(ids, min(args.max_queries, len(ids))))
        keep = set(rec.store.ids) - set(held)
        mlp_alone = Head(rec.head.weights, {**rec.head.meta, "backbone_weight": 0.0})
        heads = {"backbone as-is": None, "MLP head alone": mlp_alone,
                 f"head (backbone weight {rec.head.backbone_weight})": rec.head}
        for label, head in heads.items():
            result = evaluate(searchable_subset(rec, keep, head), catalogue_queries(rec, ids, head))
            rows.append({"set": "catalogue held-out", "method": label, **result})
        hybrid = searchable_subset(rec, keep, rec.head)
        queries = catalogue_queries(rec, ids, rec.head)
        for weight in (float(w) for w in args.weights.split(",")):
            hybrid.hybrid_weight = weight
            result = evaluate(hybrid, queries, prefer_columns=PREFER)
            rows.append({"set": "catalogue held-out", "method": f"head + hybrid w={weight}", **result})
        hybrid.hybrid_weight = rec.hybrid_weight
        consensus_weights = [float(w) for w in args.consensus.split(",") if w.strip()]
        for weight in consensus_weights:
            rows.append({"set": "catalogue held-out", "method": f"head + consensus w={weight}",
                         **_with_consensus(hybrid, weight, queries)})
        mapping = load_mapping(args.mapping)
        for split in ("test", "validation"):
            raw = photo_queries(rec, args.photos / split, mapping, None)  # embedded once, projected per head
            for label, head in heads.items():
                result = evaluate(searchable_subset(rec, None, head), _projected(raw, head))
                rows.append({"set": f"photos {split}", "method": label, **result})
            photos = _projected(raw, rec.head)
            exact = searchable_subset(rec, None, rec.head)
            for weight in consensus_weights:
                rows.append({"set": f"photos {split}", "method": f"head + consensus w={weight}",
                             **_with_consensus(exact, weight, photos)})
            served = evaluate(rec, photos)
            rows.append({"set": f"photos {split}", "method": f"head, served {rec.store.kind} index", **served})
            if not args.no_localise:
                cropped = photo_queries(rec, args.photos / split, mapping, None, localise=True)
                for label, head in heads.items():
                    if head is not mlp_alone:
                        result = evaluate(searchable_subset(rec, None, head), _projected(cropped, head))
                        rows.append({"set": f"photos {split}", "method": f"{label} + localise", **result})
    headers = ["queries", "method", "n", "P@1", "P@5", "P@10", "mAP@10", "nDCG@10", "hit@5", "type+colour P@5",
               "colour@5", "gender@5", "p50 ms"]
    keys = ("P@1", "P@5", "P@10", "mAP@10", "nDCG@10", "hit@5", "P@5_type_colour", "agree_baseColour@5",
            "agree_gender@5")
    table = [[r["set"], r["method"], r["queries"], *(r["metrics"].get(k, "") for k in keys), r["latency_ms"]["p50"]]
             for r in rows]
    print_table(headers, table, json_mode=args.json)
    write_results(args.name, {"machine": machine(), "note": args.note, "model": model, "seconds": round(time.time() - started),
                              "index_dir": str(args.index_dir), "rows": rows}, echo=args.json)
    return 0


def _projected(queries: list[Query], head: Head | None) -> list[Query]:
    """Photo queries (raw backbone features) in ``head``'s space; their embedding time stays in their latency."""
    return queries if head is None else [replace(q, vector=head.apply(q.vector[None, :])[0]) for q in queries]


def _with_consensus(rec: Recommender, weight: float, queries: list[Query]) -> dict[str, Any]:
    rec.consensus_weight = weight
    try:
        return evaluate(rec, queries)
    finally:
        rec.consensus_weight = 0.0


if __name__ == "__main__":
    run_main(main)
