"""Relevance feedback with a simulated shopper: which feedback method lifts P@5 more, after one and two rounds.

    nice .venv/bin/python benchmarks/feedback.py --index-dir INDEX [--max-queries 1000] [--photos DIR]
        [--mapping JSON] [--methods none,rocchio,contrast] [--rounds 2] [--name feedback]

Queries: a seeded sample of the index's held-out products (``fashionrec.split.is_held_out(id, 0.1, 0)``; their
own articleType is the relevant set) and the real photos of ``clothing-photos/test`` (relevant: the class's
articleTypes in ``mapping.json``). Every query searches the products that are *not* held out, exactly (flat
index), in the space the index serves (through its head when it has one).

The shopper: round 0 is the plain top 5. After each round she looks at the 5 results, likes every one of the
right articleType and dislikes the first two (at most) of the wrong ones; her marks accumulate over the rounds
and the next round asks ``Recommender.steer`` with all of them. Marked products (liked or disliked) never come back
in a later round (the library excludes the examples themselves); unmarked products seen before may. Method
``none`` is the control: the same exclusions, but the query itself unchanged ("show me the next ones"), so the
lift of a method over ``none`` is what the feedback itself adds beyond not repeating judged products.

Crop (``--crop``): the photos queried with a box around the garment from ``fashionrec.localise.garment_box``, a
stand-in for boxes drawn by hand (there are no hand-drawn boxes in the repository), against the full photo.

Writes benchmarks/results/NAME.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from _common import SHARED, machine, print_table, run_main, write_results
from fashionrec.columns import load_mapping
from fashionrec.evaluate import Query, catalogue_queries, photo_queries, searchable_subset
from fashionrec.feedback import ALPHA, BETA, GAMMA, NEGATIVE_WEIGHT, Examples
from fashionrec.imageio import load_image
from fashionrec.localise import garment_box
from fashionrec.recommend import Recommender
from fashionrec.split import is_held_out

K = 5
MAX_DISLIKES = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-dir", type=Path, required=True, help="an index of the shared catalogue (read only)")
    parser.add_argument("--max-queries", type=int, default=1000, help="seeded sample of the held-out products")
    parser.add_argument("--photos", type=Path, default=SHARED / "clothing-photos" / "test")
    parser.add_argument("--mapping", type=Path, default=SHARED / "mapping.json")
    parser.add_argument("--methods", default="none,rocchio,contrast")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--crop", action=argparse.BooleanOptionalAction, default=True,
                        help="also P@5 of the photos with a garment_box crop (stand-in for hand-drawn boxes)")
    parser.add_argument("--boxes", type=Path, default=Path(__file__).with_name("crop_boxes.json"),
                        help="hand-drawn boxes on test photos (JSON), compared with the whole photo")
    parser.add_argument("--name", default="feedback")
    parser.add_argument("--note", default="")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    started = time.time()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    rows: list[dict[str, Any]] = []
    with Recommender.open(args.index_dir) as rec:
        held = sorted(i for i in rec.store.ids if is_held_out(i, 0.1, 0))
        keep = set(rec.store.ids) - set(held)
        ids = sorted(random.Random(0).sample(held, min(args.max_queries, len(held))))
        searched = searchable_subset(rec, keep, rec.head)
        searched.consensus_weight = 0.0
        sets = {"catalogue held-out": catalogue_queries(rec, ids, rec.head),
                "photos test": photo_queries(rec, args.photos, load_mapping(args.mapping), rec.head)}
        for name, queries in sets.items():
            for method in methods:
                rows.append({"set": name, "method": method, "queries": len(queries),
                             **simulate(searched, queries, method, args.rounds)})
        crop_rows = crop_benchmark(searched, args.photos, load_mapping(args.mapping)) if args.crop else []
        if args.boxes and args.boxes.is_file():
            crop_rows += hand_box_benchmark(searched, args.photos, load_mapping(args.mapping), args.boxes)

    headers = ["queries", "method", "n", *(f"P@5 r{r}" for r in range(args.rounds + 1)),
               *(f"hit@5 r{r}" for r in range(args.rounds + 1)), "ms/query"]
    table = [[r["set"], r["method"], r["queries"], *r["P@5"], *r["hit@5"], r["ms_per_query"]] for r in rows]
    print_table(headers, table, json_mode=args.json)
    if crop_rows:
        print_table(["queries", "query image", "n", "P@5", "hit@5"],
                    [[r["set"], r["query"], r["queries"], r["P@5"], r["hit@5"]] for r in crop_rows], json_mode=args.json)
    write_results(args.name, {
        "machine": machine(), "note": args.note, "model": rec.store.model, "index_dir": str(args.index_dir),
        "head": rec.head is not None, "searched": len(keep), "k": K, "max_dislikes": MAX_DISLIKES,
        "constants": {"rocchio": {"alpha": ALPHA, "beta": BETA, "gamma": GAMMA}, "contrast_negative_weight": NEGATIVE_WEIGHT},
        "protocol": ("round 0 = plain top 5; after each round the shopper likes every result of a relevant articleType "
                     "and dislikes the first two wrong ones; marks accumulate; marked products never come back in "
                     "later rounds; 'none' = same exclusions, unchanged query"),
        "seconds": round(time.time() - started), "rows": rows, "crop": crop_rows,
    }, echo=args.json)
    return 0


def simulate(rec: Recommender, queries: Sequence[Query], method: str, rounds: int) -> dict[str, Any]:
    """Mean P@5 and hit@5 after 0..rounds rounds of the simulated shopper's feedback with ``method``."""
    precision = np.zeros((len(queries), rounds + 1))
    hits = np.zeros_like(precision)
    elapsed, steered = 0.0, 0
    for n, q in enumerate(tqdm(queries, desc=method, unit="q")):
        liked: list[str] = []
        disliked: list[str] = []
        for r in range(rounds + 1):
            t0 = time.perf_counter()
            if method == "none":  # the control: the query unchanged, judged products left out
                results = rec.recommend_vectors(q.vector[None, :], K, exclude=set(liked) | set(disliked))[0]
            else:
                results = rec.steer(q.vector, K, None, Examples(tuple(liked), tuple(disliked)), method=method)
            if r:
                elapsed += time.perf_counter() - t0
                steered += 1
            relevant = [x.metadata.get("articleType") in q.relevant for x in results]
            precision[n, r] = sum(relevant) / K
            hits[n, r] = float(any(relevant))
            liked += [x.id for x, ok in zip(results, relevant) if ok]
            disliked += [x.id for x, ok in zip(results, relevant) if not ok][:MAX_DISLIKES]
    return {"P@5": [round(float(v), 4) for v in precision.mean(axis=0)],
            "hit@5": [round(float(v), 4) for v in hits.mean(axis=0)],
            "ms_per_query": round(1000 * elapsed / max(steered, 1), 2)}


def crop_benchmark(rec: Recommender, folder: Path, mapping: dict[str, list[str]]) -> list[dict[str, Any]]:
    """P@5 / hit@5 of the photos as a whole and cropped to ``garment_box`` through the ``box`` argument."""
    photos = sorted(p for cls in mapping for p in (folder / cls).glob("*.jpg"))
    scores: dict[str, list[tuple[float, float]]] = {"full photo": [], "box = garment_box (stand-in)": []}
    for photo in tqdm(photos, desc="crop", unit="img"):
        image = load_image(photo)
        left, top, right, bottom = garment_box(image)
        relevant = set(mapping[photo.parent.name])
        for label, box in (("full photo", None), ("box = garment_box (stand-in)", (left, top, right - left, bottom - top))):
            results = rec.recommend(image, K, box=box)
            ok = [x.metadata.get("articleType") in relevant for x in results]
            scores[label].append((sum(ok) / K, float(any(ok))))
    return [{"set": "photos test", "query": label, "queries": len(v), "P@5": round(float(np.mean([p for p, _ in v])), 4),
             "hit@5": round(float(np.mean([h for _, h in v])), 4)} for label, v in scores.items()]


def hand_box_benchmark(rec: Recommender, folder: Path, mapping: dict[str, list[str]], boxes_file: Path
                       ) -> list[dict[str, Any]]:
    """P@5 / hit@5 of the photos with a hand-drawn box (``boxes_file``) against the same photos whole."""
    boxes = json.loads(boxes_file.read_text())["boxes"]
    scores: dict[str, list[tuple[float, float]]] = {"full photo (hand-boxed subset)": [], "hand-drawn box": []}
    for name, box in tqdm(sorted(boxes.items()), desc="hand boxes", unit="img"):
        image = load_image(folder / name)
        relevant = set(mapping[name.split("/")[0]])
        for label, query_box in (("full photo (hand-boxed subset)", None), ("hand-drawn box", tuple(box))):
            results = rec.recommend(image, K, box=query_box)
            ok = [x.metadata.get("articleType") in relevant for x in results]
            scores[label].append((sum(ok) / K, float(any(ok))))
    return [{"set": "photos test", "query": label, "queries": len(v), "P@5": round(float(np.mean([p for p, _ in v])), 4),
             "hit@5": round(float(np.mean([h for _, h in v])), 4)} for label, v in scores.items()]


if __name__ == "__main__":
    run_main(main)
