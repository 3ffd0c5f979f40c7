"""Photo-like views of studio shots, so a head trained on the catalogue also serves shoppers' photos.

A head trained on white-background product shots learns studio-only cues: searched alone, it lowered real-photo
hit@5 on ``clothing-photos`` while lifting catalogue P@5. Training it on views that look more
like a phone photo (the garment on a coloured, gradient or noisy ground, off-centre, tilted, zoomed, in other
light, sometimes soft, sometimes mirrored) closes most of that gap: see docs/quality.md.

Each view is a pure function of the image and a seed, so a view cached by ``fashionrec train`` is the same view a
rerun would make.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

STUDIO_WHITE = 245  # a pixel whose darkest channel is brighter than this is studio background (JPEG noise ~5)


def studio_background(pixels: np.ndarray) -> np.ndarray:
    """Mask of the studio-white pixels connected to the image border: white parts of the garment itself (a
    white shirt, a logo) are enclosed by its outline and stay out of the mask."""
    from scipy import ndimage  # here: the CLI imports this module for every command, and importing scipy is slow

    white = pixels.min(axis=2) > STUDIO_WHITE
    labels, _ = ndimage.label(white)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, edge[edge > 0])


def _ground(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A random plain, gradient or textured background of ``shape`` (H, W, 3), float."""
    kind = rng.integers(3)
    if kind == 0:
        return np.broadcast_to(rng.integers(0, 256, 3).astype(np.float64), shape)
    if kind == 1:
        top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        t = np.linspace(0.0, 1.0, shape[0])[:, None, None]
        return np.broadcast_to(top * (1 - t) + bottom * t, shape)
    return np.clip(rng.integers(40, 220, 3) + rng.normal(0.0, 25.0, shape), 0, 255)


def photo_like(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One random photo-like view of an RGB product shot (any size); the garment's own pixels are kept."""
    pixels = np.asarray(image.convert("RGB"))
    ground = _ground(pixels.shape, rng)
    pixels = np.where(studio_background(pixels)[..., None], ground, pixels).astype(np.uint8)
    fill = tuple(int(c) for c in ground.reshape(-1, 3).mean(axis=0))
    width, height = image.size
    margin = int(max(width, height) * rng.uniform(0.0, 0.3))  # room to move the garment off-centre
    view = Image.new("RGB", (width + 2 * margin, height + 2 * margin), fill)
    view.paste(Image.fromarray(pixels), (margin, margin))
    view = view.rotate(float(rng.uniform(-20, 20)), resample=Image.Resampling.BILINEAR, fillcolor=fill)
    scale = rng.uniform(0.75, 1.0)
    crop_w, crop_h = max(1, int(view.width * scale)), max(1, int(view.height * scale))
    left, top = int(rng.integers(0, view.width - crop_w + 1)), int(rng.integers(0, view.height - crop_h + 1))
    view = view.crop((left, top, left + crop_w, top + crop_h))
    view = ImageEnhance.Brightness(view).enhance(rng.uniform(0.6, 1.3))
    view = ImageEnhance.Contrast(view).enhance(rng.uniform(0.7, 1.3))
    view = ImageEnhance.Color(view).enhance(rng.uniform(0.6, 1.4))
    if rng.random() < 0.3:
        view = view.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    if rng.random() < 0.5:
        view = ImageOps.mirror(view)
    return view
