"""The shared street photos (``street-photos``: ``photos/<name>.jpg``, ``masks/<name>.png`` pixel-level label maps,
``labels.json``, and a mapping label -> relevant catalogue values): their labelled garments, read once here for
measuring (:mod:`fashionrec.street_eval`) and for training (:mod:`fashionrec.kind_train`, :mod:`fashionrec.train`).

Only the training part is ever trained on; the validation part (:func:`fashionrec.split.is_validation_photo`) is
measured. :func:`write_street_crops` turns the training part into labelled photos in the layout of
``clothing-photos`` (a folder per label and a mapping), so that the head learns garments as they are worn.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from fashionrec.errors import FashionrecError
from fashionrec.garments import XYWH, crop_box, mask_box
from fashionrec.split import is_validation_photo

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
        part = {True: "validation part", False: "training part", None: "photos"}[validation]
        raise FashionrecError(f"no labelled garments in the {part} of {street_dir}")
    return photos


CROPS_MAPPING = "mapping.json"
CROPS_SOURCE = "source.json"  # the street folder and mapping the crops were made from
CROP_PREFIX = "street-"  # crop folders are named street-<label>, apart from the classes of other photo folders


def write_street_crops(street_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                       mapping: Mapping[str, Sequence[str]], *, progress: bool = True) -> int:
    """Crop every garment of the training part of ``street_dir`` (its box plus ``CROP_MARGIN``) into
    ``out_dir/street-<label>/<photo>-<n>.jpg``, and write ``out_dir/mapping.json`` ({folder: relevant values});
    the number of crops. The folder appears whole or not at all (written beside it, then renamed); one made from
    the same street folder and mapping is kept as it is, one made from others is replaced."""
    out = Path(out_dir)
    source = json.dumps({"street_dir": str(Path(street_dir).resolve()), "mapping": dict(sorted(mapping.items()))},
                        sort_keys=True)
    if (out / CROPS_MAPPING).is_file() and (out / CROPS_SOURCE).is_file() and (out / CROPS_SOURCE).read_text() == source:
        return sum(1 for _ in out.glob("*/*.jpg"))
    photos = street_photos(Path(street_dir), mapping, validation=False)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    written: dict[str, list[str]] = {}
    count = 0
    for photo in tqdm(photos, desc="cropping street photos", unit="photo", disable=not progress):
        image = Image.open(photo.path).convert("RGB")
        for n, garment in enumerate(photo.garments):
            folder = CROP_PREFIX + garment.label
            (partial / folder).mkdir(exist_ok=True)
            crop_box(image, garment.box, CROP_MARGIN).save(partial / folder / f"{photo.name}-{n}.jpg", quality=90)
            written[folder] = list(mapping[garment.label])
            count += 1
    (partial / CROPS_MAPPING).write_text(json.dumps(dict(sorted(written.items())), indent=1))
    (partial / CROPS_SOURCE).write_text(source)
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return count
