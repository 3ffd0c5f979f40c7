"""``fashionrec evaluate``: ranking quality of an index, by its label column (see fashionrec.evaluate)."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from fashionrec.cli.common import (
    add_index_dir,
    add_json,
    add_localise,
    add_ranking_options,
    apply_localise,
    apply_ranking_options,
)
from fashionrec.columns import load_mapping
from fashionrec.errors import FashionrecError
from fashionrec.evaluate import (
    catalogue_queries,
    evaluate,
    label_of,
    photo_queries,
    searchable_subset,
    searched_ids,
)
from fashionrec.ranking import RankingConfig
from fashionrec.recommend import Recommender

COLUMNS = ("P@1", "P@5", "P@10", "mAP@10", "nDCG@10", "hit@5")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="measure P@k, mAP@10, nDCG@10, agreement and latency of an index")
    add_index_dir(p)
    add_json(p)
    p.add_argument("--photos", type=Path, metavar="DIR", help="query with DIR/<class>/*.jpg (needs --mapping)")
    p.add_argument("--mapping", type=Path, metavar="JSON",
                   help="class -> relevant values of the label column (JSON object)")
    p.add_argument("--label", metavar="COLUMN",
                   help="judge relevance by this column (default: the index's recorded label)")
    p.add_argument("--leave-one-out", action="store_true",
                   help="catalogue queries against the whole index, each query's own product excluded; default: "
                   "the products held out of head training query the other products")
    p.add_argument("--sample", type=int, default=0, help="seeded sample of this many queries (0 = all)")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample")
    p.add_argument("--no-head", action="store_true", help="evaluate the raw backbone features (same split)")
    p.add_argument("--hybrid", metavar="COL1,COL2", default="",
                   help="also rank with the query's own values of these columns as soft preferences "
                   "(catalogue queries), and compare with image-only")
    add_ranking_options(p)
    add_localise(p)
    p.add_argument("--report", type=Path, metavar="DIR", help="write report.md, result.json and PNG plots into DIR")
    p.add_argument("--street", type=Path, metavar="DIR",
                   help="shop the look on street photos with label maps (DIR/photos, masks, labels.json; relevance "
                   "by DIR/mapping.json or --mapping): garment crops, looks and the localiser, per garment class")
    p.add_argument("--all-photos", action="store_true",
                   help="with --street: every labelled photo, not only the validation part nothing was trained on")
    p.set_defaults(func=run)


def run_street(args: argparse.Namespace) -> int:
    """``--street DIR``: fashionrec.street_eval's protocol over DIR's labelled photos."""
    from fashionrec.street import street_photos
    from fashionrec.street_eval import evaluate_street

    mapping = load_mapping(args.mapping or args.street / "mapping.json")
    with Recommender.open(args.index_dir, ranking=RankingConfig.from_env()) as rec:
        apply_ranking_options(args, rec)
        photos = street_photos(args.street, mapping, validation=None if args.all_photos else True,
                               limit=args.sample)
        result = {"protocol": "street", "part": "all" if args.all_photos else "validation",
                  **evaluate_street(rec, photos, mapping, rec.garment_classes, progress=not args.json)}
    if args.json:
        print(json.dumps(result))
        return 0
    crops, look = result["crops"], result["look"]
    print(f"street photos: {result['photos']} ({result['part']} part), garments: {result['garments']}")
    print(f"{'class':<12} {'garments':>8} {'crop hit@5':>10} {'crop P@5':>9} {'look recall':>11} {'box recall':>10}")
    for name, row in crops["by_class"].items():
        print(f"{name:<12} {row['n']:>8} {row['hit@5']:>10.3f} {row['P@5']:>9.3f} "
              f"{look['recall_by_class'][name]:>11.3f} "
              f"{result['localiser']['box_recall_by_class'][name]:>10.3f}")
    overall = crops["overall"]
    print(f"{'all':<12} {overall['n']:>8} {overall['hit@5']:>10.3f} {overall['P@5']:>9.3f} {look['recall']:>11.3f} "
          f"{result['localiser']['box_recall']:>10.3f}")
    print(f"look precision {look['precision']:.3f}, {look['returned_per_photo']} garments per photo, "
          f"latency p50 {look['latency_ms']['p50']} ms")
    return 0


def _queries(args: argparse.Namespace, rec: Recommender) -> tuple[str, Recommender, list[Any]]:
    head = None if args.no_head else rec.head
    if args.photos:
        if not args.mapping:
            raise FashionrecError("--photos needs --mapping (class -> relevant values of the label column)")
        searched = rec if head is rec.head else searchable_subset(rec, None, None)
        return "photos", searched, photo_queries(rec, args.photos, load_mapping(args.mapping), head,
                                                 progress=not args.json)
    if args.leave_one_out:
        ids, keep, protocol = searched_ids(rec), None, "leave-one-out"
    else:
        if rec.head is None or not rec.head.holdout_ids:
            raise FashionrecError("no held-out products recorded (train a head with `fashionrec train --holdout 0.1`),"
                                  " or use --leave-one-out")
        ids = rec.head.holdout_ids
        keep, protocol = set(searched_ids(rec)) - set(ids), "holdout"
    if args.sample:
        ids = random.Random(args.seed).sample(sorted(ids), min(args.sample, len(ids)))
    return protocol, searchable_subset(rec, keep, head), catalogue_queries(rec, sorted(ids), head, args.label)


def run(args: argparse.Namespace) -> int:
    if args.street:
        return run_street(args)
    with Recommender.open(args.index_dir, ranking=RankingConfig.from_env()) as rec:
        apply_ranking_options(args, rec)
        apply_localise(args, rec)
        label = label_of(rec, args.label)  # an index without a usable label: one error line, before any work
        protocol, searched, queries = _queries(args, rec)
        runs = {}
        if searched.consensus_weight:
            runs[f"consensus ({searched.vote_column}, w={searched.consensus_weight})"] = evaluate(
                searched, queries, progress=not args.json, label=label)
            searched.consensus_weight = 0.0
        runs["image-only"] = evaluate(searched, queries, progress=not args.json, label=label)
        prefer = [c.strip() for c in args.hybrid.split(",") if c.strip()]
        if prefer:
            runs[f"hybrid ({'+'.join(prefer)}, w={searched.hybrid_weight})"] = evaluate(
                searched, queries, prefer_columns=prefer, progress=not args.json, label=label)
        result = {"protocol": protocol, "label": label,
                  "head": rec.head.fingerprint if rec.head and not args.no_head else None,
                  "localise": rec.localise, "runs": runs,
                  **{k: v for k, v in runs["image-only"]["metrics"].items() if k in COLUMNS}}
    if args.report:
        from fashionrec.eval_report import write_report

        write_report(result, args.report)
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)
    return 0


def _print(result: dict[str, Any]) -> None:
    print(f"protocol: {result['protocol']}, label: {result['label']}, head: {result['head']}, "
          f"localise: {result['localise']}")
    header = f"{'run':<40} {'queries':>7} " + " ".join(f"{c:>8}" for c in COLUMNS) + "   latency p50/p90/p99 ms"
    print(header)
    for name, run in result["runs"].items():
        m, lat = run["metrics"], run["latency_ms"]
        print(f"{name:<40} {run['queries']:>7} " + " ".join(f"{m.get(c, 0):>8.3f}" for c in COLUMNS)
              + f"   {lat['p50']}/{lat['p90']}/{lat['p99']}")
        agree = ", ".join(f"{k[6:-2]} {v:.3f}" for k, v in m.items() if k.startswith("agree_"))
        if agree:
            print(f"{'':<40} agreement@5: {agree}")
