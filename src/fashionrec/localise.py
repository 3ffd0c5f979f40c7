"""Find the garment in a shopper's photo, so the query can be cropped to it before it is embedded.

Catalogue products are studio shots on white; a shopper's photo is mostly floor, bed, hanger or wall around one
garment. No learned weights: the background is modelled from the photo's own border (a few colour clusters in
CIE Lab, so a two-coloured bed sheet or a patterned floor is still "background"), a pixel whose colour is far
from every background cluster is foreground, the mask is cleaned by morphology and its largest connected
component(s) give the box. When the evidence is weak (a low-contrast photo, a mask that is tiny or covers almost
everything, an image too small to judge) the full image is returned unchanged: a wrong crop costs more than no
crop. The box keeps a margin and never falls below a minimum share of the image.

Everything is computed on a copy downscaled to about 96 px, so a 320 px photo takes a few milliseconds. Pure
functions, no global state. Whether it helps retrieval: see docs/quality.md (localisation) and docs/model.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from fashionrec.errors import FashionrecError
from fashionrec.imageio import WHITE

Box = tuple[int, int, int, int]  # left, top, right, bottom (right and bottom exclusive), like PIL's crop


@dataclass(frozen=True)
class LocaliseParams:
    """Knobs of :func:`garment_box`; the defaults were chosen on ``clothing-photos/train`` only."""

    work_side: int = 96  # longer side of the copy the mask is computed on
    border: float = 0.06  # width of the border band sampled as background, share of each side
    clusters: int = 2  # colour clusters of the background model
    min_cluster: float = 0.1  # a border cluster smaller than this share is ignored (a garment touching the edge)
    lightness_weight: float = 0.5  # weight of Lab L against a and b: shading and shadows matter less than hue
    min_spread: float = 4.0  # floor of a cluster's spread, in Lab units (a flat wall has almost none)
    threshold: float = 3.0  # foreground: farther than this many spreads from every background cluster
    min_distance: float = 12.0  # ... and farther than this many Lab units
    keep_ratio: float = 0.2  # components at least this share of the largest one are kept too
    margin: float = 0.02  # added on each side of the box, share of the box's side
    min_side: float = 0.35  # the box is never narrower (lower) than this share of the image's width (height)
    min_mask: float = 0.02  # a mask under this share of the image: not sure, full image
    max_box: float = 0.92  # a box over this share of the image's area: nothing to gain, full image
    min_contrast: float = 2.0  # median foreground distance (in spreads) below this: not sure, full image
    min_pixels: int = 16  # images with a side under this are returned whole


DEFAULT_PARAMS = LocaliseParams()


def garment_box(image: Image.Image, params: LocaliseParams = DEFAULT_PARAMS) -> Box:
    """The box ``(left, top, right, bottom)`` around the garment in ``image``, or the full image when unsure."""
    return _analyse(image, params)[0]


def localise(image: Image.Image, params: LocaliseParams = DEFAULT_PARAMS, *, whiten: bool = False) -> Image.Image:
    """``image`` cropped to :func:`garment_box` (a new image; the full image when unsure).

    With ``whiten`` the pixels outside the garment mask also become white, like a studio shot."""
    box, mask = _analyse(image, params)
    rgb = image.convert("RGB")
    if whiten and mask is not None:
        soft = Image.fromarray((mask * 255).astype(np.uint8)).resize(rgb.size, Image.Resampling.BILINEAR)
        rgb = Image.composite(rgb, Image.new("RGB", rgb.size, WHITE), soft)
    return rgb.crop(box)


def _analyse(image: Image.Image, p: LocaliseParams) -> tuple[Box, np.ndarray | None]:
    """The box and, when one was found, the foreground mask (float 0..1 at work size, dilated a little)."""
    from scipy import ndimage  # here: importing it costs every command half a second, and localising is opt-in

    width, height = image.size
    full: Box = (0, 0, width, height)
    if min(width, height) < p.min_pixels:
        return full, None
    scale = p.work_side / max(width, height)
    small = image.convert("RGB")
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = small.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    lab = ndimage.gaussian_filter(_to_lab(np.asarray(small)), sigma=(1.0, 1.0, 0))
    lab[..., 0] *= p.lightness_weight
    distance, spread = _background_distance(lab, p)
    foreground = (distance > p.threshold) & (distance * spread > p.min_distance)
    mask = _clean(foreground, p.keep_ratio)
    h, w = mask.shape
    if mask.sum() < p.min_mask * h * w or np.median(distance[mask]) < p.min_contrast:
        return full, None
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = _grown(cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h, p)
    if (box[2] - box[0]) * (box[3] - box[1]) > p.max_box:
        return full, None
    left, top, right, bottom = box
    pixel_box = (int(np.floor(left * width)), int(np.floor(top * height)),
                 int(np.ceil(right * width)), int(np.ceil(bottom * height)))
    soft = ndimage.gaussian_filter(ndimage.binary_dilation(mask, iterations=2).astype(np.float32), 1.0)
    return pixel_box, np.clip(soft * 1.5, 0, 1)


def _background_distance(lab: np.ndarray, p: LocaliseParams) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: distance to the nearest background cluster in units of that cluster's spread, and the spread."""
    h, w, _ = lab.shape
    band_y, band_x = max(1, round(h * p.border)), max(1, round(w * p.border))
    edge = np.ones((h, w), bool)
    edge[band_y:h - band_y, band_x:w - band_x] = False
    centres, spreads = _clusters(lab[edge], p)
    d = np.linalg.norm(lab[:, :, None, :] - centres[None, None], axis=-1) / spreads  # (h, w, k)
    nearest = d.argmin(axis=-1)
    return np.take_along_axis(d, nearest[..., None], -1)[..., 0], spreads[nearest]


def _clusters(pixels: np.ndarray, p: LocaliseParams) -> tuple[np.ndarray, np.ndarray]:
    """A few k-means clusters of the border colours (deterministic farthest-point start), the small ones dropped."""
    centres = [np.median(pixels, axis=0)]
    for _ in range(1, min(p.clusters, len(pixels))):
        d = np.min([np.linalg.norm(pixels - c, axis=1) for c in centres], axis=0)
        centres.append(pixels[int(d.argmax())])
    c = np.array(centres)
    for _ in range(8):
        labels = np.linalg.norm(pixels[:, None] - c[None], axis=-1).argmin(axis=1)
        c = np.array([pixels[labels == j].mean(axis=0) if (labels == j).any() else c[j] for j in range(len(c))])
    labels = np.linalg.norm(pixels[:, None] - c[None], axis=-1).argmin(axis=1)
    share = np.bincount(labels, minlength=len(c)) / len(pixels)
    keep = share >= min(p.min_cluster, share.max())
    spreads = np.array([
        np.sqrt(np.mean(np.sum((pixels[labels == j] - c[j]) ** 2, axis=1))) if keep[j] else 0.0 for j in range(len(c))
    ])
    return c[keep], np.maximum(spreads[keep], p.min_spread)


def _clean(foreground: np.ndarray, keep_ratio: float) -> np.ndarray:
    """Open, close and fill the mask, then keep its largest connected component and those nearly as large."""
    from scipy import ndimage

    mask = ndimage.binary_opening(foreground, iterations=1)
    mask = ndimage.binary_fill_holes(ndimage.binary_closing(mask, iterations=2, border_value=0))
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return mask
    areas = np.bincount(labels.ravel())[1:]
    kept = np.flatnonzero(areas >= keep_ratio * areas.max()) + 1
    return np.isin(labels, kept)


def _grown(left: float, top: float, right: float, bottom: float, p: LocaliseParams) -> tuple[float, ...]:
    """The box (in shares of the image) with its margin, widened to the minimum side, kept inside the image."""
    mx, my = (right - left) * p.margin, (bottom - top) * p.margin
    out = []
    for lo, hi, m in ((left, right, mx), (top, bottom, my)):
        lo, hi = lo - m, hi + m
        if hi - lo < p.min_side:
            centre = (lo + hi) / 2
            lo, hi = centre - p.min_side / 2, centre + p.min_side / 2
        shift = max(0.0, -lo) - max(0.0, hi - 1)
        out.append((max(0.0, lo + shift), min(1.0, hi + shift)))
    (left, right), (top, bottom) = out
    return left, top, right, bottom


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 (h, w, 3) -> CIE Lab float32 (D65)."""
    c = rgb.astype(np.float32) / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ np.array([[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192], [0.1805, 0.0722, 0.9505]], np.float32)
    xyz /= np.array([0.95047, 1.0, 1.08883], np.float32)
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def parse_switch(value: str, what: str = "FASHIONREC_LOCALISE") -> bool:
    """``"1"`` -> True, ``"0"`` -> False; anything else is a clear error."""
    if value.strip() not in ("0", "1"):
        raise FashionrecError(f"{what} must be 0 or 1, got {value!r}")
    return value.strip() == "1"

