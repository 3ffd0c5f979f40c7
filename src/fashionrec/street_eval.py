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

import json
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from fashionrec.errors import FashionrecError
from fashionrec.garments import XYWH, GarmentClasses, crop_box, iou, mask_box
from fashionrec.split import is_validation_photo

if TYPE_CHECKING:  # evaluation runs a recommender; preparing training crops (kind_train) needs none
    from fashionrec.recommend import Recommender

MIN_SHARE = 0.01
CROP_MARGIN = 0.1
IOU_FOUND = 0.3


@dataclass(frozen=True)
class StreetGarment:
    label: str
    box: XYWH
    share: float


@dataclass(frozen=True)
class StreetPhoto:
    name: str
    path: Path
    garments: tuple[StreetGarment, ...]  # the mapped labels covering min_share of the photo
    labels: tuple[str, ...] = ()  # every mapped label in the photo's label map, however small


def labelled_garments(labels: np.ndarray, names: Sequence[str], mapping: Mapping[str, Sequence[str]],
                      min_share: float = MIN_SHARE) -> list[StreetGarment]:
    """The garments of one label map: each label with relevant values in ``mapping`` covering ``min_share``."""
    out = []
    counts = np.bincount(labels.ravel(), minlength=len(names))
    for number in np.flatnonzero(counts >= min_share * labels.size):
        name = names[int(number)]
        if not mapping.get(name):
            continue
        out.append(StreetGarment(name, mask_box(labels == number), float(counts[number] / labels.size)))
    return out


def street_photos(street_dir: Path, mapping: Mapping[str, Sequence[str]], *, validation: bool | None = True,
                  limit: int = 0) -> list[StreetPhoto]:
    """The labelled photos of ``street_dir`` (validation part only by default; False: the training part; None:
    all) with their garments, in name order."""
    try:
        names = json.loads((street_dir / "labels.json").read_text())["labels"]
    except (OSError, ValueError, KeyError) as exc:
        raise FashionrecError(f"{street_dir} is not a street-photo folder (photos/, masks/, labels.json): {exc}") from None
    photos = []
    for mask in sorted((street_dir / "masks").glob("*.png")):
        if validation is not None and is_validation_photo(mask.stem) != validation:
            continue
        labels = np.asarray(Image.open(mask))
        garments = labelled_garments(labels, names, mapping)
        present = tuple(names[int(n)] for n in np.unique(labels) if mapping.get(names[int(n)]))
        if garments:
            photos.append(StreetPhoto(mask.stem, street_dir / "photos" / f"{mask.stem}.jpg", tuple(garments), present))
        if limit and len(photos) >= limit:
            break
    if not photos:
        raise FashionrecError(f"no labelled validation photos in {street_dir}")
    return photos


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
