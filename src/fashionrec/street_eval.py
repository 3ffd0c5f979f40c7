"""Measure shop the look on street photos with pixel-level label maps (the shared ``street-photos`` layout:
``photos/<name>.jpg``, ``masks/<name>.png``, ``labels.json``, and a mapping label -> relevant catalogue values).

Protocol (issue "shop the look"; only photos of the validation part, :func:`fashionrec.split.is_validation_photo`,
unless ``every_photo`` says otherwise):

* a **garment** is one labelled garment of a photo whose label has relevant values in the mapping and whose pixels
  cover at least ``min_share`` (1 %) of the photo; its box is the box around its pixels;
* **crops**: each garment's box plus a 10 % margin on every side queries :meth:`Recommender.recommend` as a shopper's
  crop would (whatever ranking the recommender applies by default, kind steering included); hit@5 and P@5 by the
  garment's relevant values, per label and per garment class;
* **look**: the whole photo queries :meth:`Recommender.look`; of its first ``max_garments`` garments, *look recall*
  is the share of labelled garments that some returned garment overlaps with IoU >= 0.3 and whose top 5 holds a
  product relevant to the labelled garment; *look precision* the share of returned garments whose top 5 holds at
  least 3 products relevant to some garment labelled in the photo (any label of its map, however small);
* **localiser**: box recall per class (a labelled garment is found when a returned garment of its class overlaps it
  with IoU >= 0.3), and the look's latency (decode, localise, embed, search) per photo.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from fashionrec.errors import FashionrecError
from fashionrec.garments import GarmentClasses, crop_box, iou
from fashionrec.street import CROP_MARGIN, StreetPhoto

if TYPE_CHECKING:
    from fashionrec.recommend import Recommender

IOU_FOUND = 0.3


def _relevant(results: Sequence[Any], values: set[str], column: str) -> list[bool]:
    return [r.metadata.get(column, "") in values for r in results]


def evaluate_street(rec: Recommender, photos: Sequence[StreetPhoto], mapping: Mapping[str, Sequence[str]],
                    classes: GarmentClasses, *, k: int = 5, max_garments: int = 6, crops: bool = True,
                    look: bool = True, progress: bool = True) -> dict[str, Any]:
    """Crop, look and localiser metrics over ``photos`` (see the module's protocol)."""
    column = classes.column
    if column not in rec.columns:
        raise FashionrecError(f"the index has no {column!r} column to judge relevance by")
    class_of = classes.class_of()
    crop_rows: list[dict[str, Any]] = []
    look_found: list[dict[str, Any]] = []
    returned: list[bool] = []
    latencies: list[float] = []
    for photo in tqdm(photos, desc="street photos", unit="photo", disable=not progress):
        image = Image.open(photo.path).convert("RGB")
        if crops:
            for garment in photo.garments:
                results = rec.recommend(crop_box(image, garment.box, CROP_MARGIN), k=k)
                flags = _relevant(results, set(mapping[garment.label]), column)
                crop_rows.append({"label": garment.label, "class": class_of.get(garment.label, "other"),
                                  "hit@5": float(any(flags[:5])), "P@5": sum(flags[:5]) / 5})
        if look:
            start = time.perf_counter()
            answer = rec.look(image, k=k, max_garments=max_garments)
            latencies.append((time.perf_counter() - start) * 1000)
            every = set().union(*(mapping[label] for label in photo.labels or [g.label for g in photo.garments]))
            for found in answer:
                returned.append(sum(_relevant(found.results[:5], every, column)) >= 3)
            for garment in photo.garments:
                relevant = set(mapping[garment.label])
                overlapping = [f for f in answer if iou(f.box, garment.box) >= IOU_FOUND]
                look_found.append({
                    "label": garment.label, "class": class_of.get(garment.label, "other"),
                    "found": float(any(any(_relevant(f.results[:5], relevant, column)) for f in overlapping)),
                    "boxed": float(any(f.label == class_of.get(garment.label) for f in overlapping)),
                })
    out: dict[str, Any] = {"photos": len(photos), "garments": sum(len(p.garments) for p in photos), "k": k}
    if crops:
        out["crops"] = {"overall": _mean(crop_rows, ("hit@5", "P@5")), "by_class": _by(crop_rows, "class",
                                                                                      ("hit@5", "P@5")),
                        "by_label": _by(crop_rows, "label", ("hit@5", "P@5"))}
    if look:
        out["look"] = {"recall": round(float(np.mean([r["found"] for r in look_found])), 4),
                       "precision": round(float(np.mean(returned)), 4) if returned else 0.0,
                       "returned_per_photo": round(len(returned) / len(photos), 2),
                       "recall_by_class": {c: v["found"] for c, v in _by(look_found, "class", ("found",)).items()},
                       "latency_ms": {"p50": round(float(np.percentile(latencies, 50)), 1),
                                      "p95": round(float(np.percentile(latencies, 95)), 1)}}
        out["localiser"] = {"box_recall": round(float(np.mean([r["boxed"] for r in look_found])), 4),
                            "box_recall_by_class": {c: v["boxed"] for c, v in _by(look_found, "class",
                                                                                   ("boxed",)).items()}}
    return out


def _mean(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, float]:
    return {"n": len(rows), **{key: round(float(np.mean([r[key] for r in rows])), 4) if rows else 0.0
                               for key in keys}}


def _by(rows: Sequence[Mapping[str, Any]], field: str, keys: Sequence[str]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row[field]].append(row)
    return {name: _mean(group, keys) for name, group in sorted(groups.items(), key=lambda g: -len(g[1]))}
