"""Every error leaves the API as ``{"error": "<one line>", "detail": ...}`` with a fitting status code.

Clients (and the web page) then need one code path for failures. Bad input is always a 4xx: a
:class:`~fashionrec.errors.FashionrecError` that no route mapped to something more specific is a 400, request
validation is a 422, unknown paths are 404. Only a bug gives a 500, and even then without a traceback.
A client that goes away before its request body is complete (Starlette's ``ClientDisconnect``) is no bug: nothing
is processed, one info line is logged, and the 400 built for it is never sent (there is nobody to send it to).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from fashionrec.errors import FashionrecError

log = logging.getLogger("fashionrec.api")


class ApiError(Exception):
    """A request failure with its HTTP status, raised by routes and upload handling."""

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


def error_response(status: int, message: str, detail: Any = None,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "detail": jsonable_encoder(detail)}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception type to the common JSON error shape."""

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.message, exc.detail)

    async def user_error(_: Request, exc: Exception) -> JSONResponse:
        return error_response(400, str(exc))

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(422, f"invalid request: {where}: {first.get('msg', 'invalid value')}", errors)

    async def client_gone(request: Request, _: Exception) -> JSONResponse:
        log.info("client disconnected before its request was complete: %s %s", request.method, request.url.path)
        return error_response(400, "the client disconnected before the request body was complete")

    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal server error")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(FashionrecError, user_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(Exception, bug)
