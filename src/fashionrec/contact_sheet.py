"""A picture of a query and its results, because people judge recommendations faster by eye than by ids."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from fashionrec.catalog_db import CatalogDB
from fashionrec.columns import read_roles
from fashionrec.imageio import load_image, pad_to_square

TILE = 160
CAPTION = 34


def _tile(image: Image.Image, lines: Sequence[str]) -> Image.Image:
    tile = Image.new("RGB", (TILE, TILE + CAPTION), "white")
    tile.paste(pad_to_square(image).resize((TILE, TILE), Image.Resampling.BICUBIC), (0, 0))
    draw = ImageDraw.Draw(tile)
    for n, line in enumerate(lines[:2]):
        draw.text((4, TILE + 3 + 15 * n), line[:26], fill="black")
    return tile


def save_contact_sheet(query: str | os.PathLike[str] | bytes, results: Sequence, db: CatalogDB, target: str) -> Path:
    """Save one row: the query photo, then each result with its score, label and colour (the index's columns)."""
    tiles = [_tile(load_image(query), ["query"])]
    stored = db.get_many([r.id for r in results])
    roles = read_roles(db)
    for r in results:
        meta = r.metadata
        described = " ".join(meta.get(c, "") for c in (roles.label, roles.colour) if c)
        caption = [f"{r.score:.3f}  id {r.id}", described]
        tiles.append(_tile(load_image(stored[r.id].image_path), caption))
    sheet = Image.new("RGB", (len(tiles) * (TILE + 6), TILE + CAPTION), "white")
    for n, tile in enumerate(tiles):
        sheet.paste(tile, (n * (TILE + 6), 0))
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
