"""Limits and options of one API app, fixed when the app is created."""

from __future__ import annotations

from dataclasses import dataclass, field

from fashionrec.errors import FashionrecError
from fashionrec.imageio import DEFAULT_MAX_PIXELS

MIB = 1024 * 1024


@dataclass(frozen=True)
class ApiSettings:
    """What the server accepts from clients.

    ``max_upload_bytes`` bounds the uploaded file (10 MiB by default: a phone photo is 2-6 MiB);
    ``max_pixels`` bounds its decoded size (a tiny PNG can claim 20000x20000 pixels); ``cors_origins`` lists
    the web origins (e.g. a shop front-end) allowed to call the API from a browser; none by default, since the
    bundled page is served from the same origin. ``body_timeout_s`` is the time a request body has to arrive
    in full (408 after it); ``drain_bytes`` is how much of a refused body is still read and thrown away so that
    clients that send everything before reading get the answer (:mod:`fashionrec.api.body`). ``api_key`` is
    never shown (not in ``repr``, not logged).
    """

    max_upload_bytes: int = 10 * MIB
    max_pixels: int = DEFAULT_MAX_PIXELS
    cors_origins: tuple[str, ...] = ()
    body_timeout_s: float = 60.0
    drain_bytes: int = 64 * MIB
    api_key: str | None = field(default=None, repr=False)
    """The secret the write routes (items API, ``/admin/reload``) want in ``X-API-Key``; None: writes are off."""

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1:
            raise FashionrecError(f"max upload size must be positive, got {self.max_upload_bytes} bytes")
        if self.max_pixels < 1:
            raise FashionrecError(f"max pixels must be positive, got {self.max_pixels}")
        if not self.body_timeout_s > 0:
            raise FashionrecError(f"body timeout must be positive, got {self.body_timeout_s} s")
        if self.api_key is not None and len(self.api_key) < 16:
            raise FashionrecError("the API key must have at least 16 characters")
        if self.drain_bytes < 0:
            raise FashionrecError(f"drain bytes must not be negative, got {self.drain_bytes}")
