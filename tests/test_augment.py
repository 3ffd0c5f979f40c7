"""Photo-like views of studio shots (fashionrec.augment): the garment survives, the studio white does not."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fashionrec.augment import photo_like, studio_background


def _product_shot() -> Image.Image:
    """60x80 studio shot: white ground, a red garment with a white logo enclosed by it."""
    pixels = np.full((80, 60, 3), 255, np.uint8)
    pixels[15:65, 12:48] = (200, 20, 30)
    pixels[30:40, 25:35] = 255  # white inside the garment: not background
    return Image.fromarray(pixels)


def _red(image: Image.Image) -> int:
    a = np.asarray(image).astype(int)
    return int(((a[..., 0] > a[..., 1] + 60) & (a[..., 0] > a[..., 2] + 60)).sum())


def test_background_mask_spares_white_inside_the_garment() -> None:
    mask = studio_background(np.asarray(_product_shot()))
    assert mask[0, 0] and mask[79, 59] and mask[5, 30]
    assert not mask[35, 30] and not mask[20, 20]


def test_views_replace_the_studio_white_and_keep_the_garment() -> None:
    shot = _product_shot()
    for seed in range(12):
        view = photo_like(shot, np.random.default_rng(seed))
        a = np.asarray(view)
        assert view.mode == "RGB" and min(view.size) > 0
        assert _red(view) > 0.3 * _red(shot) * (view.width * view.height) / (60 * 80 * 1.7**2)
        corners = a[[0, 0, -1, -1], [0, -1, 0, -1]]
        assert not (corners.min(axis=1) > 245).all(), f"seed {seed}: the studio white is still there"


def test_views_are_a_function_of_the_seed() -> None:
    shot = _product_shot()
    one, same = photo_like(shot, np.random.default_rng(7)), photo_like(shot, np.random.default_rng(7))
    assert one.tobytes() == same.tobytes()
    assert one.tobytes() != photo_like(shot, np.random.default_rng(8)).tobytes()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200), st.integers(1, 200), st.sampled_from(["RGB", "L", "RGBA", "P", "CMYK", "1"]),
       st.integers(0, 2**32 - 1))
def test_any_image_gives_an_rgb_view(width: int, height: int, mode: str, seed: int) -> None:
    image = Image.new(mode, (width, height))
    view = photo_like(image, np.random.default_rng(seed))
    assert view.mode == "RGB" and view.width >= 1 and view.height >= 1
