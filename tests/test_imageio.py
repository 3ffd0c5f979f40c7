"""Decoding whatever users send: odd modes become RGB, bad input becomes one clear ImageError."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fashionrec.errors import ImageError
from fashionrec.imageio import ACCEPTED_FORMATS, load_image, pad_to_square
from tests.conftest import DEMO_CATALOG, DEMO_QUERIES

RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


def _encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def _px(img: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    pixel = img.getpixel(xy)
    assert isinstance(pixel, tuple)
    return pixel


def _close(actual: tuple[int, ...], expected: tuple[int, ...], tol: int = 12) -> bool:
    """JPEG is lossy: colours come back within a few levels."""
    return all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))


def _png_claiming(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose IHDR is patched (with a valid CRC) to claim ``width`` x ``height``."""
    data = bytearray(_encode(Image.new("L", (1, 1)), "PNG"))
    data[16:24] = struct.pack(">II", width, height)  # IHDR data starts after signature, length and type
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_greyscale_jpeg_becomes_rgb_with_equal_channels() -> None:
    img = load_image(_encode(Image.new("L", (30, 20), 90), "JPEG"))
    assert img.mode == "RGB" and img.size == (30, 20)
    r, g, b = _px(img, (10, 10))
    assert r == g == b and abs(r - 90) <= 2


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (24, 16), (0, 255, 255, 0))  # pure red in CMYK
    img = load_image(_encode(cmyk, "JPEG"))
    assert img.mode == "RGB" and img.size == (24, 16)
    assert _close(_px(img, (12, 8)), RED)


def test_transparent_png_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (20, 10), (0, 0, 0, 0))  # transparent *black*: must not come out black
    rgba.paste((255, 0, 0, 255), (0, 0, 10, 10))
    img = load_image(_encode(rgba, "PNG"))
    assert img.mode == "RGB"
    assert img.getpixel((2, 5)) == RED
    assert img.getpixel((15, 5)) == WHITE


def test_palette_png_with_transparent_index_is_white() -> None:
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([0, 0, 0, 0, 0, 255])  # index 0 black (transparent), index 1 blue
    pal.paste(1, (0, 0, 4, 8))
    img = load_image(_encode(pal, "PNG", transparency=0))
    assert img.getpixel((1, 1)) == BLUE and img.getpixel((6, 1)) == WHITE


def test_animated_gif_keeps_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), colour).convert("P") for colour in (RED, BLUE)]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    img = load_image(data)
    assert img.mode == "RGB" and img.getpixel((8, 8)) == RED


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (40, 20), BLUE)
    img.paste(RED, (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    upright = load_image(_encode(img, "JPEG", exif=exif, quality=95))
    assert upright.size == (20, 40)
    assert _close(_px(upright, (10, 5)), RED)  # the left edge is now the top
    assert _close(_px(upright, (10, 35)), BLUE)


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    ramp = Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16))  # mid-grey at 16 bits
    img = load_image(_encode(ramp, "PNG"))
    assert img.getpixel((0, 0)) == (128, 128, 128)


def test_path_and_pil_inputs(tmp_path: Path) -> None:
    path = tmp_path / "shirt.webp"
    Image.new("RGB", (12, 9), RED).save(path)
    assert load_image(path).size == (12, 9)
    assert load_image(str(path)).size == (12, 9)
    original = Image.new("LA", (5, 5), (200, 255))
    converted = load_image(original)
    assert converted.mode == "RGB" and converted is not original and original.mode == "LA"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"size,colour\nM,red\n", "not an image"),
        (_encode(Image.new("RGB", (8, 8)), "TIFF"), "not an image in a supported format"),
        (_encode(Image.new("RGB", (64, 64), RED), "JPEG")[:300], "truncated"),
        (_encode(Image.linear_gradient("L").convert("RGB"), "PNG")[:-200], "truncated"),
    ],
    ids=["empty", "text", "tiff", "truncated-jpeg", "truncated-png"],
)
def test_bad_bytes_raise_image_error(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path)  # a directory is not an image file
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.jpg")


def test_header_claiming_a_huge_image_is_refused_before_decoding() -> None:
    with pytest.raises(ImageError, match="too many pixels"):
        load_image(_png_claiming(20000, 20000))  # past even Pillow's own bomb limit
    with pytest.raises(ImageError, match=r"8000x6000 = 48,000,000 \(limit 40,000,000\)"):
        load_image(_png_claiming(8000, 6000))  # only our limit catches this one


def test_max_pixels_is_per_call() -> None:
    data = _encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageError, match="too many pixels"):
        load_image(data, max_pixels=9_999)
    assert load_image(data, max_pixels=10_000).size == (100, 100)


def test_accepted_formats_all_decode() -> None:
    for fmt in ACCEPTED_FORMATS:
        assert load_image(_encode(Image.new("RGB", (6, 4), RED), fmt)).size == (6, 4), fmt


def test_pad_to_square_centres_without_stretching() -> None:
    img = Image.new("RGB", (60, 80), RED)
    square = pad_to_square(img)
    assert square.size == (80, 80)
    assert square.crop((10, 0, 70, 80)).tobytes() == img.tobytes()  # content is pixel-for-pixel intact
    assert square.getpixel((5, 40)) == WHITE and square.getpixel((75, 40)) == WHITE
    assert pad_to_square(img, fill=BLUE).getpixel((0, 0)) == BLUE


@settings(max_examples=60, deadline=None)
@given(width=st.integers(1, 300), height=st.integers(1, 300))
@pytest.mark.slow
def test_pad_to_square_property(width: int, height: int) -> None:
    img = Image.new("RGB", (width, height), RED)
    square = pad_to_square(img)
    side = max(width, height)
    assert square.size == (side, side)
    left, top = (side - width) // 2, (side - height) // 2
    assert square.crop((left, top, left + width, top + height)).tobytes() == img.tobytes()
    assert np.asarray(square).reshape(-1, 3).tolist().count(list(RED)) == width * height


def test_large_jpegs_are_decoded_at_a_reduced_scale_never_below_the_draft_side() -> None:
    photo = Image.open(min(DEMO_QUERIES.glob("*.jpg"))).convert("RGB").resize((1600, 1200))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    assert load_image(data).size == (1600, 1200)
    assert load_image(data, draft=250).size == (400, 300)  # 1/4: both sides stay at least 250
    assert load_image(data, draft=384).size == (800, 600)  # 1/4 would make the short side 300
    assert load_image(data, draft=700).size == (1600, 1200)  # halving would go below 700
    small = DEMO_CATALOG / "images" / min(p.name for p in (DEMO_CATALOG / "images").glob("*.jpg"))
    assert np.array_equal(np.asarray(load_image(small, draft=384)), np.asarray(load_image(small)))
