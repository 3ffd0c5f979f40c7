"""Uploads: every kind of bad file gets its own 4xx JSON error, odd-but-valid images get results, and the
server keeps answering afterwards."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fashionrec.api import ApiSettings, create_app
from fashionrec.recommend import Recommender
from tests.conftest import DEMO_QUERIES, assert_error, upload

PHOTO = DEMO_QUERIES / "dress.jpg"


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    with Image.open(PHOTO) as img:
        return img.convert("RGB")


def top_ids(client: TestClient, data: bytes) -> list[str]:
    response = upload(client, data, params={"k": 5})
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["results"]]


# refused ----------------------------------------------------------------------------------------------------
def test_empty_file_is_400(demo_client: TestClient) -> None:
    assert_error(upload(demo_client, b""), 400, "empty")


def test_truncated_jpeg_is_422(demo_client: TestClient) -> None:
    data = PHOTO.read_bytes()
    assert_error(upload(demo_client, data[: len(data) // 2]), 422, "truncated")


def test_text_file_named_jpg_is_415(demo_client: TestClient) -> None:
    response = upload(demo_client, b"just some notes, not a photo\n" * 20, name="photo.jpg", content_type="image/jpeg")
    assert_error(response, 415, "not an image in an accepted format")
    assert response.json()["detail"]["accepted"] == ["JPEG", "PNG", "WEBP", "GIF", "BMP"]


def test_tiff_is_refused_although_pillow_could_read_it(demo_client: TestClient, photo: Image.Image) -> None:
    assert_error(upload(demo_client, encode(photo, "TIFF"), name="photo.tif"), 415, "accepted format")


def test_png_decompression_bomb_is_413_without_decoding(demo_client: TestClient) -> None:
    bomb = encode(Image.new("1", (20000, 20000)), "PNG")
    assert len(bomb) < 100_000  # a tiny file claiming 400 million pixels
    assert_error(upload(demo_client, bomb, name="bomb.png", content_type="image/png"), 413, "too many pixels")


def test_50_mb_upload_is_413(demo_client: TestClient) -> None:
    big = PHOTO.read_bytes() + b"\0" * (50 * 1024 * 1024)
    response = upload(demo_client, big)
    assert_error(response, 413, "larger than the limit")
    assert response.json()["detail"] == {"max_bytes": 10 * 1024 * 1024}


def test_chunked_upload_without_length_is_cut_at_the_limit(demo_client: TestClient) -> None:
    boundary = "fashionrec-test"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(40):  # 40 MiB, streamed without a Content-Length header
            yield b"\0" * (1024 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = demo_client.post("/api/recommend", content=body(),
                           headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert_error(response, 413, "larger than the limit")


@pytest.mark.parametrize(
    ("kwargs", "status", "fragment"),
    [
        ({"content": b"\xff\xd8\xff", "headers": {"Content-Type": "image/jpeg"}}, 415, "multipart/form-data"),
        ({}, 415, "multipart/form-data"),
        ({"data": {"photo": "not the right field"}, "files": {"other": ("a.jpg", b"x")}}, 422, "no complete file"),
        ({"content": b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc",
          "headers": {"Content-Type": "multipart/form-data; boundary=b"}}, 422, "no complete file"),
    ],
)
def test_requests_without_a_file_field_are_4xx(demo_client: TestClient, kwargs: dict, status: int, fragment: str) -> None:
    assert_error(demo_client.post("/api/recommend", **kwargs), status, fragment)


def test_limits_come_from_the_settings(demo_recommender: Recommender, photo: Image.Image) -> None:
    strict = TestClient(create_app(demo_recommender, settings=ApiSettings(max_upload_bytes=30_000, max_pixels=200 * 200)))
    small = encode(photo.resize((150, 200)), "JPEG")
    assert upload(strict, small).status_code == 200
    assert_error(upload(strict, encode(photo.resize((240, 320)), "PNG")), 413, "larger than the limit of 30,000")
    assert_error(upload(strict, encode(photo.resize((210, 280)), "JPEG")), 413, "210x280")


# accepted ---------------------------------------------------------------------------------------------------
def test_lossless_formats_give_the_same_results_as_the_decoded_jpeg(demo_client: TestClient, photo: Image.Image) -> None:
    expected = top_ids(demo_client, PHOTO.read_bytes())
    for fmt in ("PNG", "BMP"):
        assert top_ids(demo_client, encode(photo, fmt)) == expected, fmt
    assert top_ids(demo_client, encode(photo, "WEBP", lossless=True)) == expected


def test_animated_gif_uses_its_first_frame(demo_client: TestClient, photo: Image.Image) -> None:
    first = photo.quantize(256)
    second = Image.new("RGB", photo.size, (0, 90, 200)).quantize(256)
    gif = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    response = upload(demo_client, gif, name="anim.gif", content_type="image/gif")
    assert response.status_code == 200, response.text
    assert response.json()["query"]["format"] == "GIF"
    assert [r["id"] for r in response.json()["results"]] == top_ids(demo_client, encode(first.convert("RGB"), "PNG"))


def test_cmyk_jpeg_is_accepted(demo_client: TestClient, photo: Image.Image) -> None:
    cmyk = encode(photo.convert("CMYK"), "JPEG", quality=95)
    with Image.open(io.BytesIO(cmyk)) as check:
        assert check.mode == "CMYK"
    assert len(top_ids(demo_client, cmyk)) == 5


def test_png_with_alpha_is_accepted(demo_client: TestClient, photo: Image.Image) -> None:
    rgba = photo.convert("RGBA")
    rgba.paste((0, 0, 0, 0), (0, 0, photo.width, photo.height // 6))  # a transparent band on top
    assert len(top_ids(demo_client, encode(rgba, "PNG"))) == 5


def test_greyscale_is_accepted(demo_client: TestClient, photo: Image.Image) -> None:
    assert len(top_ids(demo_client, encode(photo.convert("L"), "JPEG"))) == 5


def test_server_keeps_serving_after_bad_uploads(demo_client: TestClient) -> None:
    for bad in (b"", b"GIF89a broken", PHOTO.read_bytes()[:500], b"\x89PNG\r\n\x1a\n" + b"\0" * 50):
        assert 400 <= upload(demo_client, bad).status_code < 500
    assert demo_client.get("/healthz").status_code == 200
    assert len(top_ids(demo_client, PHOTO.read_bytes())) == 5
