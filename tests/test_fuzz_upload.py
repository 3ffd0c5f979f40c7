"""A bounded fuzz of the upload decoder: mutated real JPEG/PNG/GIF/WebP/BMP bytes and random bytes.

Whatever arrives, ``load_image`` returns a valid RGB image or raises ``ImageError``, and the API's
``decode_upload`` answers a decoded upload or an ``ApiError`` with a 4xx status; any other exception (or a
5xx) is a bug the server would turn into a 500. The pixel limit is kept small here so that a mutated header
claiming a big image is refused quickly (the limit itself is what is tested); the run stays within ~30 s.
"""

from __future__ import annotations

import io
import os
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fashionrec.api.errors import ApiError
from fashionrec.api.uploads import decode_upload
from fashionrec.errors import ImageError
from fashionrec.imageio import load_image
from tests.conftest import DEMO_CATALOG

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips this module (the fast tier)

MAX_PIXELS = 1 << 20
FUZZ = settings(max_examples=int(os.environ.get("FASHIONREC_FUZZ_EXAMPLES", "3000")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _seeds() -> list[bytes]:
    """Small valid files of every accepted format, with the features decoders trip on (alpha, palette, frames)."""
    photo = Image.open(min((DEMO_CATALOG / "images").glob("*.jpg"))).convert("RGB")
    frames = [photo.convert("P"), photo.rotate(90).convert("P")]
    out = []
    for image, fmt, options in [
        (photo, "JPEG", {"quality": 80}),
        (photo, "JPEG", {"progressive": True}),
        (photo.convert("CMYK"), "JPEG", {}),
        (photo.convert("RGBA"), "PNG", {}),
        (photo.convert("P"), "PNG", {"transparency": 0}),
        (photo.convert("L"), "PNG", {}),
        (frames[0], "GIF", {"save_all": True, "append_images": frames[1:]}),
        (photo, "WEBP", {"quality": 70}),
        (photo.convert("RGBA"), "WEBP", {"lossless": True}),
        (photo, "BMP", {}),
    ]:
        buffer = io.BytesIO()
        image.save(buffer, fmt, **options)
        out.append(buffer.getvalue())
    return out


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed file with a few random edits: bit flips, overwritten runs, cuts, insertions, splices."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        edit = draw(st.sampled_from(["flip", "overwrite", "truncate", "insert", "delete", "splice", "header"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if edit == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif edit == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[pos : pos + len(chunk)] = chunk
        elif edit == "truncate":
            del data[pos:]
        elif edit == "insert":
            data[pos:pos] = draw(st.binary(max_size=64))
        elif edit == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif edit == "splice":
            other = draw(st.sampled_from(SEEDS))
            data[pos:] = other[draw(st.integers(0, len(other) - 1)) :]
        else:  # "header": edit the first bytes, where sizes, modes and chunk lengths live
            at = draw(st.integers(0, 40))
            data[at : at + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff", b"\x01"]))
    return bytes(data)


payloads = st.one_of(mutated(), st.binary(max_size=256), st.sampled_from(SEEDS))


def _check_image(image: Image.Image) -> None:
    assert image.mode == "RGB" and image.width >= 1 and image.height >= 1
    assert image.width * image.height <= MAX_PIXELS
    image.getpixel((image.width - 1, image.height - 1))  # fully decoded: reading a pixel cannot fail later


@pytest.mark.filterwarnings("ignore")
@FUZZ
@given(data=payloads)
def test_load_image_returns_rgb_or_raises_image_error(data: bytes) -> None:
    try:
        image = load_image(data, max_pixels=MAX_PIXELS)
    except ImageError as exc:
        assert str(exc)
    else:
        _check_image(image)


@pytest.mark.filterwarnings("ignore")
@FUZZ
@given(data=payloads)
def test_decode_upload_answers_4xx_or_an_image(data: bytes) -> None:
    try:
        upload = decode_upload(data, MAX_PIXELS)
    except ApiError as exc:
        assert 400 <= exc.status < 500 and exc.message
    else:
        _check_image(upload.image)


def test_every_seed_decodes() -> None:
    """The fuzz starts from valid files: if these did not decode, the mutations would prove nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for data in SEEDS:
            _check_image(load_image(data, max_pixels=MAX_PIXELS))
