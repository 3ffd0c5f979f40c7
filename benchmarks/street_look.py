"""Shop the look on the shared street photos' validation part: garment crops, whole-photo looks, the localiser.

    nice .venv/bin/python benchmarks/street_look.py --index INDEX_DIR [--street DIR] [--name street_look]
        [--limit N] [--no-kind] [--half tuning|held] [--min-share S] [--max-kinds N] [--neighbour-weight W]
        [--neighbours N]

The index is built beforehand from the shared catalogue (the issue's protocol: 8,000 products, a seeded sample:
``benchmarks/street_look.py --make-catalogue CSV`` writes its CSV, then ``fashionrec index ../shared/data/catalogue
--metadata CSV --index-dir INDEX_DIR``). Every figure is measured on the street photos of the validation part
(fashionrec.split.is_validation_photo), which neither the localiser nor the kind head was trained on; the protocol
is fashionrec.street_eval's. ``--no-kind`` turns the kind steering of plain queries off, to measure what it adds.
``--min-share`` / ``--max-kinds`` / ``--neighbour-weight`` / ``--neighbours`` measure another kind-steering rule than
the shipped one (``--neighbour-weight 0``: the classifier alone, without the nearest products' vote). ``--half``
keeps one half of those photos (by a hash of the name): the kind steering's settings chosen on street photos
(``fashionrec.kinds.MIN_SHARE``, ``NEIGHBOUR_WEIGHT``, ``NEIGHBOURS``; benchmarks/look_tuning.py) were picked on the
``tuning`` half; the ``held`` half was not looked at for them.
Prints a summary, writes benchmarks/results/<name>.json.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from _common import SHARED, add_kind_rule_options, apply_kind_rule, machine, print_table, run_main, write_results
from fashionrec.columns import load_mapping
from fashionrec.garments import crop_box, load_classes
from fashionrec.recommend import Recommender
from fashionrec.street import CROP_MARGIN, StreetPhoto, street_photos
from fashionrec.street_eval import evaluate_street


def make_catalogue(catalogue: Path, out: Path, products: int, seed: int) -> int:
    """A CSV of ``products`` well-formed rows with an image, drawn at random (seeded) from ``catalogue``."""
    with open(catalogue / "styles.csv", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [r for r in reader if len(r) == len(header) and (catalogue / "images" / f"{r[0]}.jpg").is_file()]
    random.Random(seed).shuffle(rows)
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows[:products])
    return min(products, len(rows))


def half_of(photo: StreetPhoto) -> str:
    """``tuning`` or ``held``: the half of the validation photos this one is in (a hash of its file name)."""
    return ("tuning", "held")[int(hashlib.sha256(photo.path.name.encode()).hexdigest(), 16) % 2]


def oracle_crops(rec: Recommender, photos: list[StreetPhoto], mapping: dict[str, list[str]]) -> dict[str, Any]:
    """Crop hit@5 / P@5 with each crop steered to its labelled garment's own class, and how often the kind
    classifier's likeliest class is that class."""
    classes = load_classes()
    class_of = classes.class_of()
    hits, precisions, recognised = [], [], []
    for photo in photos:
        image = Image.open(photo.path).convert("RGB")
        for garment in photo.garments:
            crop = crop_box(image, garment.box, CROP_MARGIN)
            vectors, kinds = rec.encode_queries(rec.encoder.preprocess([crop]))
            recognised.append(bool(kinds[0]) and kinds[0][0][0] == class_of[garment.label])
            results = rec.recommend_vectors(vectors, 5, rec.kind_filters({}, (class_of[garment.label],)))[0]
            flags = [r.metadata.get(classes.column) in set(mapping[garment.label]) for r in results]
            hits.append(float(any(flags)))
            precisions.append(sum(flags) / 5)
    return {"crops": {"overall": {"n": len(hits), "hit@5": round(float(np.mean(hits)), 4),
                                  "P@5": round(float(np.mean(precisions)), 4)}},
            "kind_classifier_top1_right": round(float(np.mean(recognised)), 4)}


def main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="index of the catalogue sample")
    parser.add_argument("--street", type=Path, default=SHARED / "street-photos")
    parser.add_argument("--make-catalogue", type=Path, help="write the catalogue sample's CSV here and stop")
    parser.add_argument("--products", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="street_look")
    parser.add_argument("--limit", type=int, default=0, help="only this many validation photos (0 = all)")
    parser.add_argument("--no-kind", action="store_true", help="plain queries without kind steering")
    parser.add_argument("--no-look", action="store_true", help="crops only")
    parser.add_argument("--oracle-kind", action="store_true",
                        help="crops only, each steered to its labelled garment's class: what a perfect kind "
                        "classifier would give (an upper bound, not a result)")
    parser.add_argument("--half", choices=("tuning", "held"), help="only this half of the validation photos")
    add_kind_rule_options(parser)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.make_catalogue:
        print(make_catalogue(SHARED / "catalogue", args.make_catalogue, args.products, args.seed), "products")
        return 0
    mapping = load_mapping(args.street / "mapping.json")
    photos = street_photos(args.street, mapping, limit=args.limit)
    if args.half:
        photos = [p for p in photos if half_of(p) == args.half]
    with Recommender.open(args.index) as rec:
        if args.no_kind:
            rec.ranking = replace(rec.ranking, steer_kind=False)
        kind_rule = apply_kind_rule(rec, args)
        if args.oracle_kind:
            result = oracle_crops(rec, photos, mapping)
        else:
            result = evaluate_street(rec, photos, mapping, load_classes(), look=not args.no_look)
        products = len(rec)
    data = {"machine": machine(), "index_products": products, "street": str(args.street), "kind_steering":
            "oracle" if args.oracle_kind else not args.no_kind, "half": args.half or "all",
            "kind_rule": kind_rule,
            "protocol": "fashionrec.street_eval, validation part of the street photos", **result}
    rows = [["crops", result["crops"]["overall"]["n"], result["crops"]["overall"]["hit@5"],
             result["crops"]["overall"]["P@5"]]]
    if "look" in result:
        rows.append(["look recall / precision", result["garments"], result["look"]["recall"],
                     result["look"]["precision"]])
    print_table(["what", "n", "hit@5 / recall", "P@5 / precision"], rows, json_mode=args.json)
    write_results(args.name, data, echo=args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
