"""Contact sheets: a look's sheet is the photo with each garment's numbered box drawn in its colour, and one row per
garment (the garment cut out, framed in the same colour, then its products)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fashionrec.contact_sheet import CAPTION, GAP, LINE, LOOK_HEIGHT, TILE, box_colour, save_look_sheet
from fashionrec.look import LookGarment
from fashionrec.recommend import Recommender
from fashionrec.result import Result
from tests.conftest import STREET_PHOTO, demo_rows


def products(k: int) -> list[Result]:
    """``k`` demo catalogue products as results (the sheet draws whatever it is given)."""
    rows = list(demo_rows().items())[:k]
    return [Result(item_id, 0.5 - n / 10, row) for n, (item_id, row) in enumerate(rows)]


def colour_pixels(image: Image.Image, colour: tuple[int, int, int], box: tuple[int, int, int, int]) -> int:
    """How many pixels of ``image`` inside ``box`` (left, top, right, bottom) are exactly ``colour``."""
    pixels = np.asarray(image.convert("RGB").crop(box))
    return int((pixels == np.array(colour, dtype=np.uint8)).all(axis=-1).sum())


def test_look_sheet_draws_numbered_boxes_and_a_row_per_garment(demo_recommender: Recommender, tmp_path: Path) -> None:
    width, height = Image.open(STREET_PHOTO).size
    results = products(3)
    garments = [
        LookGarment("trousers", (120, 230, 110, 280), 0.9, results),
        LookGarment("bag", (200, 300, 60, 80), 0.8, results[:2]),
    ]
    path = save_look_sheet(STREET_PHOTO, garments, demo_recommender.db, tmp_path / "out" / "look.png")
    sheet = Image.open(path)
    assert sheet.format == "PNG"
    scale = LOOK_HEIGHT / height  # two rows fit in the minimum height: the photo is drawn LOOK_HEIGHT tall
    photo_width = round(width * scale)
    assert sheet.size == (photo_width + GAP + 4 * (TILE + GAP), LOOK_HEIGHT)
    for n, garment in enumerate(garments, 1):
        x, y, w, h = (round(v * scale) for v in garment.box)
        # the box's left edge, below its number tag, is drawn in the garment's colour, and not in the other's
        left_edge = (x, y + h // 2, x + LINE, y + h - LINE)
        assert colour_pixels(sheet, box_colour(n), left_edge) == LINE * (h - LINE - h // 2)
        assert colour_pixels(sheet, box_colour(n), (0, 0, photo_width, sheet.height)) > 2 * (w + h)
        # its row starts with the garment's tile, framed in the same colour
        row = (photo_width + GAP, (n - 1) * (TILE + CAPTION + GAP))
        frame = (row[0], row[1], row[0] + TILE, row[1] + TILE)
        assert colour_pixels(sheet, box_colour(n), frame) >= 4 * (TILE - LINE) * LINE
        assert colour_pixels(sheet, box_colour(3 - n), frame) == 0  # the other garment's colour is not there
    # the bag's row has two products: what follows its second product is white
    blank = (photo_width + GAP + 3 * (TILE + GAP), TILE + CAPTION + GAP, sheet.width, sheet.height)
    assert colour_pixels(sheet, (255, 255, 255), blank) == (blank[2] - blank[0]) * (blank[3] - blank[1])


def test_a_look_with_many_garments_is_taller_than_the_minimum(demo_recommender: Recommender, tmp_path: Path) -> None:
    results = products(1)
    garments = [LookGarment("top", (100 + 10 * n, 100, 50, 50), 0.9 - n / 10, results) for n in range(5)]
    sheet = Image.open(save_look_sheet(STREET_PHOTO, garments, demo_recommender.db, tmp_path / "look.png"))
    assert sheet.height == 5 * (TILE + CAPTION + GAP) > LOOK_HEIGHT
    assert all(colour_pixels(sheet, box_colour(n), (0, 0, sheet.width, sheet.height)) > 0 for n in range(1, 6))


def test_a_look_without_garments_is_the_photo_alone(demo_recommender: Recommender, tmp_path: Path) -> None:
    width, height = Image.open(STREET_PHOTO).size
    sheet = Image.open(save_look_sheet(STREET_PHOTO, [], demo_recommender.db, tmp_path / "look.png"))
    assert sheet.size == (round(width * LOOK_HEIGHT / height) + GAP, LOOK_HEIGHT)
    assert all(colour_pixels(sheet, box_colour(n), (0, 0, sheet.width, sheet.height)) < 50 for n in range(1, 3))
