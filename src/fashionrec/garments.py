"""Find the garments a person wears in a photo: a semantic segmentation network in ONNX Runtime (no PyTorch).

The shipped localiser (``weights/garments-lite0.onnx``, trained by :mod:`fashionrec.garment_train` on the shared
street photos) labels every cell of the photo, at a quarter of its input resolution, with one of the garment classes
of ``weights/garments.json`` or background. Each class present becomes one garment: the box around its pixels
(specks under ``min_share`` of the photo dropped, so a pair of shoes is one garment), scored by the network's mean
confidence over those pixels. The photo is letterboxed into the network's input (never stretched) and boxes are
returned in the uploaded photo's own pixels, as ``(x, y, w, h)``.

The class file is the retailer's to edit: each class lists the values of one catalogue column (``column``, by
default Myntra's ``articleType``) that a garment of that class is searched among. :func:`load_classes` reads it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fashionrec.errors import FashionrecError

logger = logging.getLogger(__name__)

LOCALISER_FILE = "garments-lite0.onnx"
LOCALISER_CARD = "garments-lite0.json"
CLASSES_FILE = "garments.json"
BACKGROUND = "background"
_METADATA_KEY = "fashionrec_garments"

XYWH = tuple[int, int, int, int]


def weights_folder() -> Path:
    return Path(str(resources.files("fashionrec") / "weights"))


def shipped_network(file: str, card: str, what: str) -> bytes:
    """The bytes of a network shipped in ``weights/``, checked against the SHA-256 its card records."""
    folder = weights_folder()
    try:
        data = (folder / file).read_bytes()
        recorded = json.loads((folder / card).read_text()).get("sha256")
    except (OSError, ValueError, AttributeError) as exc:
        raise FashionrecError(f"the shipped {what} is missing or unreadable ({exc}); reinstall fashionrec") from None
    if hashlib.sha256(data).hexdigest() != recorded:
        raise FashionrecError(f"{folder / file} does not match its recorded checksum; reinstall fashionrec")
    return data


def open_network(model: bytes | str, key: str, what: str) -> tuple[Any, dict[str, Any]]:
    """An ONNX Runtime session of a network fashionrec exported, and the metadata it carries under ``key``."""
    from fashionrec.embedders.onnx_embedder import onnx_session

    session = onnx_session(model)
    raw = session.get_modelmeta().custom_metadata_map.get(key)
    if raw is None:
        raise FashionrecError(f"the ONNX file is not a fashionrec {what} (no metadata)")
    return session, json.loads(raw)


@dataclass(frozen=True)
class GarmentClass:
    name: str
    labels: tuple[str, ...]  # street-photo labels it is trained on
    values: tuple[str, ...]  # catalogue values (of GarmentClasses.column) a garment of this class is searched among


@dataclass(frozen=True)
class GarmentClasses:
    """The garment classes and the catalogue column their values belong to (``garments.json``)."""

    column: str
    classes: tuple[GarmentClass, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    def values(self, name: str) -> tuple[str, ...]:
        for garment_class in self.classes:
            if garment_class.name == name:
                return garment_class.values
        raise FashionrecError(f"unknown garment class {name!r}; known: {', '.join(self.names)}")

    def label_map(self) -> dict[str, int]:
        """Street-photo label -> class number (1-based; 0 is background)."""
        return {label: n for n, c in enumerate(self.classes, start=1) for label in c.labels}

    def class_of(self) -> dict[str, str]:
        """Street-photo label -> the name of its class."""
        return {label: c.name for c in self.classes for label in c.labels}


def load_classes(path: str | Path | None = None) -> GarmentClasses:
    """The garment classes of ``path`` (default: the shipped ``garments.json``), checked once."""
    path = Path(path) if path is not None else weights_folder() / CLASSES_FILE
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise FashionrecError(f"cannot read garment classes {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise FashionrecError(f"garment classes {path} is not JSON: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("classes"), dict) or not raw["classes"]:
        raise FashionrecError(f"garment classes {path} needs a non-empty object 'classes'")
    column = raw.get("column", "articleType")
    if not isinstance(column, str) or not column:
        raise FashionrecError(f"garment classes {path}: 'column' must be a column name")
    classes = []
    for name, spec in raw["classes"].items():
        values = spec.get("values") if isinstance(spec, dict) else None
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise FashionrecError(f"garment classes {path}: class {name!r} needs a list of strings 'values'")
        labels = spec.get("labels", [])
        classes.append(GarmentClass(name, tuple(str(label) for label in labels), tuple(values)))
    return GarmentClasses(column, tuple(classes))


@dataclass(frozen=True)
class Garment:
    """One garment found in a photo: its class, its box ``(x, y, w, h)`` in the photo's pixels, the network's
    confidence (mean probability of the class over its pixels, 0..1) and the share of the photo it covers."""

    label: str
    box: XYWH
    score: float
    share: float
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)  # bool, photo-sized: its pixels


def letterbox(image: Image.Image, width: int, height: int, fill: tuple[int, int, int] = (127, 127, 127),
              ) -> tuple[Image.Image, float, int, int]:
    """``image`` scaled to fit ``width`` x ``height`` (aspect kept) and centred on ``fill``; with the scale and the
    left / top offsets that map a canvas pixel back to the photo."""
    scale = min(width / image.width, height / image.height)
    w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    canvas = Image.new("RGB", (width, height), fill)
    left, top = (width - w) // 2, (height - h) // 2
    canvas.paste(image.convert("RGB").resize((w, h), Image.Resampling.BILINEAR), (left, top))
    return canvas, scale, left, top


def garments_from_probabilities(
    probs: np.ndarray, names: Sequence[str], *, min_share: float, min_score: float,
) -> list[tuple[str, np.ndarray, float]]:
    """(class name, boolean mask, score) for each class present in ``probs`` ((C+1, H, W), background first),
    most confident first. A class's pixels are those it wins; connected specks smaller than ``min_share`` of the
    map are dropped, then the class is kept when what remains covers ``min_share`` and scores ``min_score``."""
    from scipy import ndimage

    winner = probs.argmax(axis=0)
    total = winner.size
    found = []
    for number, name in enumerate(names, start=1):
        mask = winner == number
        if mask.sum() < min_share * total:
            continue
        parts, count = ndimage.label(mask)
        sizes = np.bincount(parts.ravel(), minlength=count + 1)
        keep = np.flatnonzero(sizes >= max(1.0, 0.25 * min_share * total))
        mask = np.isin(parts, keep[keep > 0])
        if mask.sum() < min_share * total:
            continue
        score = float(probs[number][mask].mean())
        if score >= min_score:
            found.append((name, mask, score))
    found.sort(key=lambda f: -f[2])
    return found


class GarmentLocaliser:
    """An open localiser network: ``find(image)`` -> the garments in it, most confident first."""

    def __init__(self, model: bytes | str, *, classes: GarmentClasses | None = None) -> None:
        self._session, meta = open_network(model, _METADATA_KEY, "garment localiser")
        self.meta = meta
        self.width, self.height = int(meta["width"]), int(meta["height"])
        self.mean = np.array(meta["mean"], np.float32).reshape(3, 1, 1)
        self.std = np.array(meta["std"], np.float32).reshape(3, 1, 1)
        self.trained_classes: tuple[str, ...] = tuple(meta["classes"])
        self.classes = classes or load_classes()
        unknown = [n for n in self.classes.names if n not in self.trained_classes]
        if unknown:
            raise FashionrecError(f"garment classes {', '.join(unknown)} are not classes the localiser knows "
                                  f"({', '.join(self.trained_classes)})")
        self._input = self._session.get_inputs()[0].name

    @classmethod
    def open(cls, path: str | Path | None = None, classes: GarmentClasses | None = None) -> GarmentLocaliser:
        """The localiser in ``path``, or the shipped one (checked against the SHA-256 on its card)."""
        if path is not None:
            return cls(str(path), classes=classes)
        return cls(shipped_network(LOCALISER_FILE, LOCALISER_CARD, "garment localiser"), classes=classes)

    def probabilities(self, image: Image.Image) -> tuple[np.ndarray, float, int, int]:
        """Class probabilities ((C+1, h, w) over the letterboxed canvas, background first) with the letterbox's
        scale and offsets."""
        canvas, scale, left, top = letterbox(image, self.width, self.height)
        pixels = (np.asarray(canvas, np.float32).transpose(2, 0, 1) / 255.0 - self.mean) / self.std
        probs = self._session.run(None, {self._input: pixels[None]})[0][0]
        return probs, scale, left, top

    def find(self, image: Image.Image, *, max_garments: int = 6, min_share: float = 0.01,
             min_score: float = 0.3, masks: bool = False) -> list[Garment]:
        """The garments in ``image`` (of the classes in this localiser's class file), most confident first; at
        most ``max_garments``. ``masks`` also returns each garment's pixels, photo-sized."""
        probs, scale, left, top = self.probabilities(image)
        keep = [0] + [1 + self.trained_classes.index(n) for n in self.classes.names]
        probs = probs[keep]
        found = garments_from_probabilities(probs, self.classes.names, min_share=min_share, min_score=min_score)
        cell_x = self.width / probs.shape[2]
        cell_y = self.height / probs.shape[1]
        garments = []
        for name, mask, score in found[:max_garments]:
            ys, xs = np.nonzero(mask)
            x0 = max(0.0, (xs.min() * cell_x - left) / scale)
            y0 = max(0.0, (ys.min() * cell_y - top) / scale)
            x1 = min(float(image.width), ((xs.max() + 1) * cell_x - left) / scale)
            y1 = min(float(image.height), ((ys.max() + 1) * cell_y - top) / scale)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            left_px, top_px = int(x0), int(y0)
            box = (left_px, top_px, max(1, min(round(x1 - x0), image.width - left_px)),
                   max(1, min(round(y1 - y0), image.height - top_px)))
            share = float(mask.sum() / mask.size) * (self.width * self.height) / max(1.0, (image.width * image.height
                                                                                         * scale * scale))
            garments.append(Garment(name, box, round(score, 4), round(min(1.0, share), 4),
                                    _photo_mask(mask, image.size, scale, left, top, self.width, self.height)
                                    if masks else None))
        return garments


def _photo_mask(mask: np.ndarray, size: tuple[int, int], scale: float, left: int, top: int,
                width: int, height: int) -> np.ndarray:
    """A canvas-cell mask -> the photo's own pixels."""
    canvas = Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.Resampling.NEAREST)
    w, h = round(size[0] * scale), round(size[1] * scale)
    region = canvas.crop((left, top, left + w, top + h)).resize(size, Image.Resampling.NEAREST)
    return np.asarray(region) > 127


def mask_box(mask: np.ndarray) -> XYWH:
    """The box ``(x, y, w, h)`` around the true pixels of a non-empty boolean mask."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def crop_box(image: Image.Image, box: XYWH, margin: float = 0.0) -> Image.Image:
    """The region ``box`` of ``image``, grown by ``margin`` of its size on every side (kept inside the image)."""
    x, y, w, h = expand_box(box, margin, image.size) if margin else box
    return image.crop((x, y, x + w, y + h))


def expand_box(box: XYWH, margin: float, size: tuple[int, int]) -> XYWH:
    """``box`` grown by ``margin`` of its width and height on every side, kept inside a photo of ``size``."""
    x, y, w, h = box
    dx, dy = w * margin, h * margin
    x0, y0 = max(0, int(x - dx)), max(0, int(y - dy))
    x1, y1 = min(size[0], round(x + w + dx)), min(size[1], round(y + h + dy))
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


def iou(a: XYWH, b: XYWH) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0
