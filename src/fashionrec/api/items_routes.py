"""The write side of the API: change products while serving (``PUT`` / ``PATCH`` / ``DELETE /api/items/{id}``),
and switch to a new index generation (``POST /admin/reload``).

Writes need the server's API key (``FASHIONREC_API_KEY``) in the ``X-API-Key`` header, compared in constant
time; without a key configured the write routes exist but answer 403 to everyone, and a missing or wrong key is a
401. The key is checked before the request body is read, and is never logged or echoed. Reads stay public.

The body is a multipart form (or, for ``PATCH``, an URL-encoded one): the photo in the field ``file`` (``PUT`` only) and one text field per metadata
column. It is parsed from the stream as :mod:`fashionrec.api.uploads` parses query photos (in memory, refused
with a 413 as soon as it passes the limit), and the photo is checked by the same code (415/413/422/400).
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, Field
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool

from fashionrec.api.errors import ApiError
from fashionrec.api.models import ErrorOut, ItemOut
from fashionrec.api.service import RecommenderService, get_service
from fashionrec.api.uploads import MULTIPART_SLACK, UPLOAD_FIELD, stream_multipart, too_large
from fashionrec.errors import FashionrecError
from fashionrec.live import MAX_PHOTOS

Service = Annotated[RecommenderService, Depends(get_service)]
MAX_FIELD_BYTES = 16 * 1024
"""Largest metadata value accepted in one form field."""
MAX_FIELDS = 256

WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no `X-API-Key` header, or a wrong key"},
    403: {"model": ErrorOut, "description": "writes are off: the server has no API key (FASHIONREC_API_KEY)"},
    404: {"model": ErrorOut, "description": "no such product"},
    422: {"model": ErrorOut, "description": "bad id, unknown column, missing or several photos, corrupt photo"},
}


def require_key(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> None:
    """FastAPI dependency of every write route: 403 when the server has no key, 401 without the right one."""
    key = get_service(request).settings.api_key
    if not key:
        raise ApiError(403, "writes are off: the server was started without an API key (FASHIONREC_API_KEY)")
    if x_api_key is None or not hmac.compare_digest(x_api_key.encode(), key.encode()):
        raise ApiError(401, "send the server's API key in the X-API-Key header")


router = APIRouter(dependencies=[Depends(require_key)], responses=WRITE_ERRORS)


class _Form:
    """Multipart callbacks collecting every ``file`` part (each at most ``max_bytes``) and the text fields."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.files: list[bytes] = []
        self.fields: dict[str, str] = {}
        self._header_field = self._header_value = self._disposition = b""
        self._name: str | None = None
        self._buffer = bytearray()

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._begin, "on_header_field": self._field, "on_header_value": self._value,
            "on_header_end": self._header_end, "on_headers_finished": self._headers_done,
            "on_part_data": self._data, "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self._disposition, self._name, self._buffer = b"", None, bytearray()

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_field.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_field = self._header_value = b""

    def _headers_done(self) -> None:
        _, params = parse_options_header(self._disposition)
        name = params.get(b"name")
        self._name = None if name is None else name.decode("utf-8", "replace")

    def _data(self, data: bytes, start: int, end: int) -> None:
        self._buffer += data[start:end]
        limit = self.max_bytes if self._name == UPLOAD_FIELD else MAX_FIELD_BYTES
        if len(self._buffer) > limit:
            if self._name == UPLOAD_FIELD:
                raise too_large(self.max_bytes)
            raise ApiError(413, f"form field {self._name!r} is longer than {MAX_FIELD_BYTES:,} bytes")

    def _end(self) -> None:
        if self._name == UPLOAD_FIELD:
            self.files.append(bytes(self._buffer))
        elif self._name is not None:
            if len(self.fields) >= MAX_FIELDS:
                raise ApiError(413, f"more than {MAX_FIELDS} form fields")
            try:
                self.fields[self._name] = self._buffer.decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(422, f"form field {self._name!r} is not UTF-8 text") from None


async def read_form(request: Request, max_bytes: int, max_files: int) -> _Form:
    """The photos and text fields of a multipart body, read from the stream into memory."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type == b"application/x-www-form-urlencoded":  # text fields alone (PATCH from an HTML form)
        return await _read_urlencoded(request)
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise ApiError(415, f"send a multipart/form-data body (photo in {UPLOAD_FIELD!r}, one field per column)")
    form = _Form(max_bytes)
    await stream_multipart(request, boundary, form.callbacks(), max_files * max_bytes + MULTIPART_SLACK, max_bytes)
    return form


async def _read_urlencoded(request: Request) -> _Form:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MULTIPART_SLACK:
            raise ApiError(413, f"form body is longer than {MULTIPART_SLACK:,} bytes")
    form = _Form(0)
    try:
        form.fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body)))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(422, f"malformed form body ({exc})") from None
    return form


class ReloadOut(BaseModel):
    """The index now served."""

    items: int = Field(description="products in the index now served")
    generation: int | None = Field(description="the index generation now served (None: a store without one)")


@router.post("/admin/reload", response_model=ReloadOut, summary="Switch to the index's newest generation (API key)")
def reload(service: Service) -> ReloadOut:
    """Open the index directory again and switch to it between requests (a re-index, a new head or model);
    requests already running finish on the previous one. `fashionrec serve` also does this by itself when it
    sees a new generation (`--refresh`)."""
    try:
        rec = service.reload()
    except FashionrecError as exc:
        raise ApiError(409, f"the index cannot be opened now, still serving the previous one: {exc}") from None
    return ReloadOut(items=len(rec), generation=service.generation())


@router.put("/api/items/{item_id}", response_model=ItemOut, summary="Add or replace a product (API key)",
            status_code=200, responses={201: {"model": ItemOut, "description": "a new product"}})
async def put_item(item_id: str, request: Request, response: Response, service: Service) -> ItemOut:
    """Multipart form: the photo in `file` (repeat the field for several photos of the product, up to 8: each is
    embedded and the product is found by whichever matches a query best), and the metadata as one field per
    column of the index (columns not sent are empty). Searchable, and durable, when the answer arrives: 201 for a new product, 200 for a replaced
    one."""
    form = await read_form(request, service.settings.max_upload_bytes, MAX_PHOTOS)
    item, created = await run_in_threadpool(service.put_item, item_id, form.files, form.fields)
    response.status_code = 201 if created else 200
    return item


@router.patch("/api/items/{item_id}", response_model=ItemOut, summary="Change a product's metadata (API key)")
async def patch_item(item_id: str, request: Request, service: Service) -> ItemOut:
    """Multipart form with one field per column to change; the photo and the other columns stay."""
    form = await read_form(request, service.settings.max_upload_bytes, 1)
    if form.files:
        raise ApiError(422, "PATCH changes metadata only; send a new photo with PUT")
    return await run_in_threadpool(service.patch_item, item_id, form.fields)


@router.delete("/api/items/{item_id}", status_code=204, response_class=Response,
               summary="Remove a product (API key)")
def delete_item(item_id: str, service: Service) -> Response:
    service.delete_item(item_id)
    return Response(status_code=204)
