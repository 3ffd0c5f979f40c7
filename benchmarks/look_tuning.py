"""How the settings of kind steering and looks were chosen on street photos: a grid replayed on the tuning half.

    nice .venv/bin/python benchmarks/look_tuning.py --index INDEX_DIR [--street DIR] [--name look_tuning]

Embeds once every garment crop of the validation street photos and every garment the localiser finds in them (the
protocol of fashionrec.street_eval), keeping the kind classifier's probabilities and each garment class's top 5,
then replays the rules for each setting of a grid:

* plain crops (fashionrec.kinds): the share of the nearest products' vote in the blended probabilities
  (``neighbour_weight``) and how many products vote (``neighbours``); chosen on an index trained with ``--street``
  (the vote's indexes): the highest crop P@5 whose hit@5 is at least 0.85 (the issue's goal), under the shipped
  ``min_share`` / ``max_kinds``;
* plain crops: the probability a class needs to take places (``min_share``) and the most kinds sharing them
  (``max_kinds``), under the shipped vote. Shown, not chosen here: more hedging buys crop hit@5 with P@5, and with
  the P@5 of queries that are catalogue photos, which these street photos cannot see (benchmarks/kind_steering.py
  measures it); the index's own rule's figures are the ones looks are tuned under;
* looks (fashionrec.look), under the shipped crop rule: the weight of the localiser's class against the kind
  classifier's view (``inf``: the localiser alone, the earlier rule) and the probability the classifier must give a
  garment's class for it to be kept (``min_agreement``); chosen: the highest look precision whose recall is at
  least 0.75 (the issue's goal).

Only the ``tuning`` half of the photos (benchmarks/street_look.py's ``half_of``) chooses; the ``held`` half's
figures are written beside it, never looked at for the choice. Writes
benchmarks/results/<name>.json.
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from _common import SHARED, machine, print_table, run_main, write_results
from fashionrec.columns import load_mapping
from fashionrec.garments import crop_box, iou
from fashionrec.kinds import (
    MAX_KINDS,
    MIN_SHARE,
    OTHER,
    allot,
    blend,
    class_of_values,
    interleave,
    mix_of,
    vote,
    weigh,
)
from fashionrec.recommend import Recommender
from fashionrec.street import CROP_MARGIN, street_photos
from fashionrec.street_eval import IOU_FOUND
from street_look import half_of

HALVES = ("tuning", "held")
GRID_MIN_SHARES = (0.05, 0.1, 0.15, 0.2)
GRID_MAX_KINDS = (2, 3, 4)
GRID_NEIGHBOUR_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5)
GRID_NEIGHBOURS = (5, 10, 20, 30)
CROP_HIT_AT_LEAST = 0.85
WEIGHTS = (0.5, 1.0, 2.0, 4.0, math.inf)
MIN_AGREEMENTS = (0.0, 0.02, 0.03, 0.05, 0.07, 0.1)
LOOK_RECALL_AT_LEAST = 0.75
K = 5

Top = list[tuple[str, float, str]]  # (id, score, catalogue value)


def per_class(rec: Recommender, vector: np.ndarray, names: list[str]) -> dict[str, Top]:
    """Each class's top K (``other``: unsteered), as fashionrec.kinds steers a search to it."""
    out = {}
    for name in names:
        filters = {} if name == OTHER else rec.kind_filters({}, (name,))
        results = rec.recommend_vectors(vector[None, :], K, filters)[0]
        out[name] = [(r.id, r.score, str(r.metadata.get(rec.garment_classes.column, ""))) for r in results]
    return out


def collect(rec: Recommender, street: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    mapping = load_mapping(street / "mapping.json")
    classifier = rec.kind_classifier
    assert classifier is not None, "kind steering needs the shipped fashion model's index"
    names = list(classifier.classes)
    column = rec.garment_classes.column

    def embed(image: Image.Image, boxes: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        batch = rec.encoder.preprocess([crop_box(image, box, CROP_MARGIN) for box in boxes])
        return rec.project(rec.encoder.features(batch)), classifier.probabilities(batch)

    crops, looks = [], []
    for photo in tqdm(street_photos(street, mapping), desc="street photos", unit="photo"):
        image = Image.open(photo.path).convert("RGB")
        half = half_of(photo)
        vectors, probabilities = embed(image, [g.box for g in photo.garments])
        nearest = rec.recommend_vectors(vectors, max(GRID_NEIGHBOURS), {}, consensus=0.0)
        for garment, vector, row, near in zip(photo.garments, vectors, probabilities, nearest, strict=True):
            crops.append({"half": half, "relevant": set(mapping[garment.label]), "probabilities": row,
                          "top": per_class(rec, vector, names), "voted": [class_of_values(
                              {str(r.metadata.get(column, ""))}, rec.garment_classes) for r in near]})
        found = rec.localiser.find(image, max_garments=6)  # as Recommender.look asks
        every = set().union(*(mapping[label] for label in photo.labels or [g.label for g in photo.garments]))
        garments = []
        if found:
            vectors, probabilities = embed(image, [g.box for g in found])
            garments = [{"label": g.label, "box": g.box, "probabilities": row, "top": per_class(rec, vector, names)}
                        for g, vector, row in zip(found, vectors, probabilities, strict=True)]
        looks.append({"half": half, "every": every, "found": garments,
                      "labelled": [(g.box, set(mapping[g.label])) for g in photo.garments]})
    return crops, looks


def steer(row: np.ndarray, names: list[str], top: dict[str, Top], min_share: float, max_kinds: int) -> Top:
    """fashionrec.Recommender.steer_kinds replayed on the collected top K of each class."""
    kinds = mix_of(row, names, min_share, max_kinds)
    if not kinds:
        return top[OTHER]
    lists = [(places, top[name]) for (name, _), places in zip(kinds, allot([share for _, share in kinds], K),
                                                              strict=True) if places]
    picked = interleave(lists, K, key=lambda r: r[0])
    return sorted(picked, key=lambda r: -r[1]) if picked else top[OTHER]


def crop_scores(crops: list[dict[str, Any]], names: list[str], half: str, min_share: float, max_kinds: int,
                neighbour_weight: float, neighbours: int) -> dict[str, float]:
    hits, precisions = [], []
    for crop in crops:
        if crop["half"] == half:
            row = blend(crop["probabilities"], vote(crop["voted"][:neighbours], names), neighbour_weight)
            flags = [value in crop["relevant"] for _, _, value in steer(row, names, crop["top"], min_share, max_kinds)]
            hits.append(float(any(flags)))
            precisions.append(sum(flags) / K)
    return {"n": len(hits), "hit@5": round(float(np.mean(hits)), 4), "P@5": round(float(np.mean(precisions)), 4)}


def look_scores(looks: list[dict[str, Any]], names: list[str], half: str, crop: tuple[float, int], weight: float,
                min_agreement: float) -> dict[str, float]:
    found, precise, photos = [], [], 0
    for look in looks:
        if look["half"] != half:
            continue
        photos += 1
        answer = []
        for garment in look["found"]:
            own = garment["top"][garment["label"]]
            if not own:
                continue
            number = names.index(garment["label"])
            row = garment["probabilities"]
            if math.isinf(weight):
                answer.append((garment["box"], own))
            elif row[number] >= min_agreement:
                answer.append((garment["box"], steer(weigh(row, number, weight), names, garment["top"], *crop)))
        precise += [sum(value in look["every"] for _, _, value in top) >= 3 for _, top in answer]
        found += [any(iou(box, labelled) >= IOU_FOUND and any(v in relevant for _, _, v in top)
                      for box, top in answer) for labelled, relevant in look["labelled"]]
    return {"recall": round(float(np.mean(found)), 4), "precision": round(float(np.mean(precise)), 4),
            "returned_per_photo": round(len(precise) / photos, 2)}


def main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--street", type=Path, default=SHARED / "street-photos")
    parser.add_argument("--name", default="look_tuning")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with Recommender.open(args.index) as rec:
        crops, looks = collect(rec, args.street)
        worn = rec.head.worn_garments if rec.head is not None else 0
        classifier = rec.kind_classifier
        assert classifier is not None
        names = list(classifier.classes)
        shipped_vote = (classifier.neighbour_weight, classifier.neighbours)  # the index's (fashionrec.kinds)
        products = len(rec)
    vote_grid: list[dict[str, Any]] = [
        {"neighbour_weight": w, "neighbours": n,
         **{h: crop_scores(crops, names, h, MIN_SHARE, MAX_KINDS, w, n) for h in HALVES}}
        for w, n in itertools.product(GRID_NEIGHBOUR_WEIGHTS, GRID_NEIGHBOURS)]
    reaching = [c for c in vote_grid if c["tuning"]["hit@5"] >= CROP_HIT_AT_LEAST]
    vote_choice = max(reaching, key=lambda c: (c["tuning"]["P@5"], c["tuning"]["hit@5"])) if reaching else \
        max(vote_grid, key=lambda c: (c["tuning"]["hit@5"], c["tuning"]["P@5"]))
    crop_grid: list[dict[str, Any]] = [
        {"min_share": s, "max_kinds": m, **{h: crop_scores(crops, names, h, s, m, *shipped_vote) for h in HALVES}}
        for s, m in itertools.product(GRID_MIN_SHARES, GRID_MAX_KINDS)]
    chosen_crop = (MIN_SHARE, MAX_KINDS)  # the shipped rule (fashionrec.kinds)
    crop_choice = next(c for c in crop_grid if (c["min_share"], c["max_kinds"]) == chosen_crop)
    look_grid: list[dict[str, Any]] = [
        {"localiser_weight": "inf" if math.isinf(w) else w, "min_agreement": a,
         **{h: look_scores(looks, names, h, chosen_crop, w, a) for h in HALVES}}
        for w, a in itertools.product(WEIGHTS, MIN_AGREEMENTS) if not (math.isinf(w) and a)]
    allowed = [c for c in look_grid if c["tuning"]["recall"] >= LOOK_RECALL_AT_LEAST] or look_grid
    look_choice = max(allowed, key=lambda c: (c["tuning"]["precision"], c["tuning"]["recall"]))
    data = {"machine": machine(), "index": str(args.index), "index_products": products, "street": str(args.street),
            "protocol": "fashionrec.street_eval replayed per setting; chosen on the tuning half only",
            "rules": {"vote": f"highest tuning crop P@5 with hit@5 >= {CROP_HIT_AT_LEAST}, under the shipped "
                              "min_share / max_kinds",
                      "crops": "the shipped rule (fashionrec.kinds), under the shipped vote; the grid shows the "
                               "trade-off",
                      "looks": f"highest tuning precision with recall >= {LOOK_RECALL_AT_LEAST}, under the shipped "
                               "crop rule"},
            "chosen": {"vote": vote_choice, "crops": crop_choice, "looks": look_choice},
            "shipped_vote": {"neighbour_weight": shipped_vote[0], "neighbours": shipped_vote[1]},
            "worn_garments": worn,
            "vote": vote_grid, "crops": crop_grid, "looks": look_grid}
    print_table(["setting", "tuning", "held"], [
        [f"crops neighbour_weight {vote_choice['neighbour_weight']}, neighbours {vote_choice['neighbours']} (chosen)",
         vote_choice["tuning"], vote_choice["held"]],
        [f"crops min_share {crop_choice['min_share']}, max_kinds {crop_choice['max_kinds']} (shipped)",
         crop_choice["tuning"], crop_choice["held"]],
        [f"looks localiser_weight {look_choice['localiser_weight']}, min_agreement {look_choice['min_agreement']}",
         look_choice["tuning"], look_choice["held"]]], json_mode=args.json)
    write_results(args.name, data, echo=args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
