"""Decode any image a user sends into a plain RGB picture, or fail with one clear :class:`ImageError`.

Queries come from phones, browsers and scrapers: rotated JPEGs, transparent PNGs, palette GIFs, CMYK
files, truncated uploads, text files renamed ``.jpg`` and decompression bombs. Everything downstream
(the embedders, the web preview) may then assume an RGB image of sane size. Nothing here writes to disk
or changes Pillow's global settings, so it is safe to call from any thread of a server.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fashionrec.errors import ImageError

ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
"""Pillow format names we decode. Anything else (TIFF, PSD, EPS, ...) is refused before its decoder runs,
which keeps the attack surface to the formats people actually upload. Phone JPEGs that Pillow reports as
``MPO`` are opened by the JPEG decoder and so are accepted too."""

DEFAULT_MAX_PIXELS = 40_000_000
"""A 40-megapixel photo is already larger than any phone takes; beyond that is most likely a bomb."""

WHITE: tuple[int, int, int] = (255, 255, 255)
"""Catalogue shots are on white, so transparency and padding become white to make queries look alike."""

# What Pillow's decoders raise on damaged data; anything else is a bug and keeps its traceback.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


def load_image(
    source: str | os.PathLike[str] | bytes | Image.Image, *, max_pixels: int = DEFAULT_MAX_PIXELS,
    draft: int | None = None,
) -> Image.Image:
    """Return ``source`` as a fully decoded, upright RGB image.

    ``source`` is a file path, the raw bytes of an upload, or an already opened Pillow image (which is
    left untouched: the result is always a new image). EXIF orientation is applied because phones store
    portrait photos sideways; alpha is composited on white; only the first frame of an animation is kept.
    The pixel count is checked against ``max_pixels`` from the header, before any pixel is decoded, so a
    tiny file that claims to be enormous costs nothing. Pillow's own, process-wide bomb limit still
    applies on top of ``max_pixels``.

    ``draft`` (a side in pixels) lets the JPEG decoder scale the picture down by 2, 4 or 8 while decoding, as long
    as both sides stay at least ``draft``: several times cheaper for a large photo that will be shrunk anyway
    (indexing asks for 3x the model's input, the margin Pillow's own ``reducing_gap`` keeps). Smaller images and
    other formats are decoded as they are.

    Raises :class:`ImageError` for a missing or empty file, empty bytes, data that is not an image in
    one of :data:`ACCEPTED_FORMATS`, truncated or corrupt data, and images over ``max_pixels``.
    """
    if isinstance(source, Image.Image):
        return _decoded(source, max_pixels)
    if isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise ImageError("empty image data: the upload contained no bytes")
        return _open_and_decode(io.BytesIO(source), max_pixels, draft)
    path = Path(source)
    if not path.is_file():
        raise ImageError(f"image file not found: {path}")
    if path.stat().st_size == 0:
        raise ImageError(f"image file is empty: {path}")
    with path.open("rb") as fp:
        return _open_and_decode(fp, max_pixels, draft)


def pad_to_square(img: Image.Image, fill: tuple[int, int, int] = WHITE) -> Image.Image:
    """Centre ``img`` (RGB) on a ``fill``-coloured square whose side is its longer edge.

    Models take square inputs; stretching a 60x80 shirt to a square would change its shape, which is
    exactly what similarity should depend on, so we pad instead. A square input is returned as is.
    """
    width, height = img.size
    if width == height:
        return img
    side = max(width, height)
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(img, ((side - width) // 2, (side - height) // 2))
    return canvas


def _open_and_decode(fp: IO[bytes], max_pixels: int, draft: int | None = None) -> Image.Image:
    """Identify the format (accepted ones only) and decode; the file is closed on return."""
    try:
        with Image.open(fp, formats=ACCEPTED_FORMATS) as img:
            return _decoded(img, max_pixels, draft)
    except UnidentifiedImageError:
        names = ", ".join(ACCEPTED_FORMATS)
        raise ImageError(f"not an image in a supported format (accepted: {names})") from None
    except Image.DecompressionBombError:
        # Pillow refuses sizes far past its own limit while opening, before we see the header.
        raise ImageError(f"image has too many pixels (limit {max_pixels:,})") from None
    except _DECODE_ERRORS as exc:
        raise ImageError(f"image data is corrupt or truncated ({exc})") from None


def _decoded(img: Image.Image, max_pixels: int, draft: int | None = None) -> Image.Image:
    """Check the size, force the full decode, then make the image upright and RGB (always a new image)."""
    width, height = img.size
    if width * height > max_pixels:
        raise ImageError(f"image has too many pixels: {width}x{height} = {width * height:,} (limit {max_pixels:,})")
    try:
        if draft and min(width, height) >= 2 * draft:
            img.draft(None, (draft, draft))  # JPEG only (a no-op for other formats); never below draft per side
        img.load()  # decoding is lazy; force it here so truncation is reported now, not in the model
        return _to_rgb(ImageOps.exif_transpose(img))
    except _DECODE_ERRORS as exc:
        raise ImageError(f"image data is corrupt or truncated ({exc})") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any mode to RGB, compositing transparency (alpha or palette/tRNS) onto white."""
    if img.mode.startswith("I"):
        # 16-bit greyscale PNG: Pillow's own conversion clips every value above 255 to white.
        grey = np.clip(np.asarray(img, dtype=np.int64), 0, 65535) >> 8
        return Image.fromarray(grey.astype(np.uint8)).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img.convert("RGB")
