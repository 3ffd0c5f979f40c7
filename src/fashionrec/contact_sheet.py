"""A picture of a query and its results, because people judge recommendations faster by eye than by ids; and of a
look: the photo with its garments' numbered boxes and a row of products per garment."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from fashionrec.catalog_db import CatalogDB
from fashionrec.columns import read_roles
from fashionrec.garments import crop_box
from fashionrec.imageio import load_image, pad_to_square
from fashionrec.look import LookGarment
from fashionrec.result import Result

TILE = 160
CAPTION = 34
GAP = 6


def _tile(image: Image.Image, lines: Sequence[str]) -> Image.Image:
    tile = Image.new("RGB", (TILE, TILE + CAPTION), "white")
    tile.paste(pad_to_square(image).resize((TILE, TILE), Image.Resampling.BICUBIC), (0, 0))
    draw = ImageDraw.Draw(tile)
    for n, line in enumerate(lines[:2]):
        draw.text((4, TILE + 3 + 15 * n), line[:26], fill="black")
    return tile


def _product_tiles(results: Sequence[Result], db: CatalogDB) -> list[Image.Image]:
    """A captioned tile per result (score, id, label and colour: the index's recorded columns,
    fashionrec.columns), from the catalogue's stored photos."""
    stored = db.get_many([r.id for r in results])
    roles = read_roles(db)
    tiles = []
    for r in results:
        meta = r.metadata
        described = " ".join(meta.get(c, "") for c in (roles.label, roles.colour) if c)
        caption = [f"{r.score:.3f}  id {r.id}", described]
        tiles.append(_tile(load_image(stored[r.id].image_path), caption))
    return tiles


def _save(sheet: Image.Image, target: str | os.PathLike[str]) -> Path:
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def save_contact_sheet(query: str | os.PathLike[str] | bytes, results: Sequence[Result], db: CatalogDB,
                       target: str) -> Path:
    """Save one row: the query photo, then each result with its score, label and colour."""
    tiles = [_tile(load_image(query), ["query"]), *_product_tiles(results, db)]
    sheet = Image.new("RGB", (len(tiles) * (TILE + GAP), TILE + CAPTION), "white")
    for n, tile in enumerate(tiles):
        sheet.paste(tile, (n * (TILE + GAP), 0))
    return _save(sheet, target)


# shop the look --------------------------------------------------------------------------------------------
BOX_COLOURS = ((230, 25, 75), (0, 130, 200), (60, 180, 75), (245, 130, 48), (145, 30, 180), (240, 50, 230),
               (0, 128, 128), (170, 110, 40))
"""Garment n's box and row frame are drawn in ``BOX_COLOURS[(n - 1) % len(BOX_COLOURS)]``."""
LOOK_HEIGHT = 480  # the photo is drawn at least this tall (taller when the garment rows need more room)
LINE = 3  # box line width, in sheet pixels


def box_colour(number: int) -> tuple[int, int, int]:
    """The colour of garment ``number`` (1-based) on a look sheet."""
    return BOX_COLOURS[(number - 1) % len(BOX_COLOURS)]


def _numbered_boxes(photo: Image.Image, garments: Sequence[LookGarment], scale: float) -> Image.Image:
    """``photo`` scaled by ``scale`` with each garment's box drawn, numbered and labelled in its colour."""
    drawn = photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))),
                         Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(drawn)
    for n, garment in enumerate(garments, 1):
        x, y, w, h = (round(v * scale) for v in garment.box)
        colour = box_colour(n)
        draw.rectangle((x, y, x + w - 1, y + h - 1), outline=colour, width=LINE)
        tag = f"{n} {garment.label}"
        left, top, right, bottom = draw.textbbox((0, 0), tag)
        tx, ty = min(x, max(0, drawn.width - (right - left) - 6)), max(0, y - (bottom - top) - 6)
        draw.rectangle((tx, ty, tx + right - left + 6, ty + bottom - top + 6), fill=colour)
        draw.text((tx + 3 - left, ty + 3 - top), tag, fill="white")
    return drawn


def _garment_tile(photo: Image.Image, number: int, garment: LookGarment) -> Image.Image:
    """The garment cut out of the photo, framed in its colour and captioned with its number, label and score."""
    tile = _tile(crop_box(photo, garment.box), [f"{number} {garment.label}", f"confidence {garment.score:.2f}"])
    ImageDraw.Draw(tile).rectangle((0, 0, TILE - 1, TILE - 1), outline=box_colour(number), width=LINE)
    return tile


def save_look_sheet(query: str | os.PathLike[str] | bytes, garments: Sequence[LookGarment], db: CatalogDB,
                    target: str | os.PathLike[str]) -> Path:
    """Save a look's contact sheet: the photo with each garment's numbered, labelled box, and beside it one row
    per garment (most confident first): the garment cut out of the photo, then its products. A photo without
    garments is saved alone, captioned so."""
    photo = load_image(query)
    rows = [[_garment_tile(photo, n, g), *_product_tiles(g.results, db)] for n, g in enumerate(garments, 1)]
    row_height = TILE + CAPTION + GAP
    height = max(LOOK_HEIGHT, len(rows) * row_height)
    drawn = _numbered_boxes(photo, garments, height / photo.height)
    width = drawn.width + GAP + max((len(row) for row in rows), default=0) * (TILE + GAP)
    sheet = Image.new("RGB", (width, height), "white")
    sheet.paste(drawn, (0, 0))
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            sheet.paste(tile, (drawn.width + GAP + c * (TILE + GAP), r * row_height))
    if not rows:
        ImageDraw.Draw(sheet).text((GAP, GAP), "no garments found", fill="black")
    return _save(sheet, target)
