"""Turn an upload into a decoded image in memory, or into a 4xx that says exactly what was wrong.

Starlette's own form parsing spools files over 1 MiB to a temporary file and reads the whole body first. We
parse the multipart stream ourselves instead, chunk by chunk as it arrives, so an upload is never written to
disk and a 50 MB body is refused (413) as soon as it passes the limit, without being buffered (the rest of it
is read and thrown away before the answer goes out, so that clients that send everything first can read it:
:mod:`fashionrec.api.body`).

Status codes: not multipart, or not an image in an accepted format -> 415; over the byte or pixel limit ->
413; no ``file`` field or an unreadable multipart body -> 422; an empty file -> 400; a known format whose
data is truncated or corrupt -> 422. The client's file name and content type are ignored: the bytes decide.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from fashionrec.api.errors import ApiError
from fashionrec.errors import ImageError
from fashionrec.imageio import ACCEPTED_FORMATS, load_image

UPLOAD_FIELD = "file"
MULTIPART_SLACK = 64 * 1024
"""Bytes allowed on top of the file for boundaries, part headers and small extra fields."""

UPLOAD_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [UPLOAD_FIELD],
                    "properties": {
                        UPLOAD_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "the photo: " + ", ".join(ACCEPTED_FORMATS) + " (first frame of a GIF)",
                        }
                    },
                }
            }
        },
    }
}
"""The request body as documented in OpenAPI (the route reads it from the stream, so FastAPI cannot infer it)."""


@dataclass(frozen=True)
class DecodedUpload:
    """An upload decoded to upright RGB, with what the file declared itself to be."""

    image: Image.Image
    format: str
    width: int
    height: int


def too_large(max_bytes: int) -> ApiError:
    return ApiError(413, f"upload is larger than the limit of {max_bytes:,} bytes", {"max_bytes": max_bytes})


class _FilePart:
    """Multipart callbacks that keep the first complete ``file`` part in memory, up to ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.data: bytes | None = None
        self._header_field = b""
        self._header_value = b""
        self._disposition = b""
        self._buffer: bytearray | None = None

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._disposition = b""
        self._buffer = None

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_field.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._disposition)
        if self.data is None and params.get(b"name") == UPLOAD_FIELD.encode():
            self._buffer = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._buffer is None:
            return
        self._buffer += data[start:end]
        if len(self._buffer) > self.max_bytes:
            raise too_large(self.max_bytes)

    def _part_end(self) -> None:
        if self._buffer is not None:
            self.data = bytes(self._buffer)
            self._buffer = None


async def stream_multipart(request: Request, boundary: bytes, callbacks: object, body_limit: int,
                           max_bytes: int) -> None:
    """Feed the request body to a multipart parser with ``callbacks``, refusing (413) a body over ``body_limit``
    as declared or as received; a malformed body is a 422."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > body_limit:
        raise too_large(max_bytes)
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > body_limit:
                raise too_large(max_bytes)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise ApiError(422, f"malformed multipart body ({exc})") from None


async def read_upload(request: Request, max_bytes: int) -> bytes:
    """The bytes of the multipart field ``file``, read from the request stream into memory, at most ``max_bytes``."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise ApiError(415, f"send the photo as multipart/form-data in the field {UPLOAD_FIELD!r}")
    part = _FilePart(max_bytes)
    await stream_multipart(request, boundary, part.callbacks(), max_bytes + MULTIPART_SLACK, max_bytes)
    if part.data is None:
        raise ApiError(422, f"no complete file in the multipart field {UPLOAD_FIELD!r}")
    return part.data


def decode_upload(data: bytes, max_pixels: int) -> DecodedUpload:
    """Identify and size-check the image from its header, then decode it fully (CPU work: call off the event loop).

    The header probe exists only to give each failure its own status code; the decoding itself, with every
    conversion (EXIF rotation, alpha on white, CMYK, first GIF frame), is :func:`fashionrec.imageio.load_image`.
    """
    if not data:
        raise ApiError(400, "the uploaded file is empty")
    try:
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as probe:
            image_format, (width, height) = str(probe.format), probe.size
    except UnidentifiedImageError:
        raise ApiError(
            415, "not an image in an accepted format", {"accepted": list(ACCEPTED_FORMATS)}
        ) from None
    except Image.DecompressionBombError:
        raise ApiError(413, f"image has too many pixels (limit {max_pixels:,})", {"max_pixels": max_pixels}) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ApiError(422, f"image header is corrupt ({exc})") from None
    if width * height > max_pixels:
        raise ApiError(
            413,
            f"image has too many pixels: {width}x{height} (limit {max_pixels:,})",
            {"width": width, "height": height, "max_pixels": max_pixels},
        )
    try:
        image = load_image(data, max_pixels=max_pixels)
    except ImageError as exc:
        raise ApiError(422, str(exc)) from None
    return DecodedUpload(image, image_format, width, height)
