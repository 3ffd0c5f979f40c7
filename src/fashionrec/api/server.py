"""How ``fashionrec serve`` runs the app under uvicorn: its HTTP limits and timeouts, in one place.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) and bounds the size of a request line plus
headers (``h11_max_incomplete_event_size``), but it has no deadline for the headers themselves: a client that
sends one header byte every few seconds keeps its connection forever. :func:`guarded_h11` adds that deadline
(the request line and headers must be complete within ``header_timeout_s`` of the connection opening, or of the
previous response on a keep-alive connection); the body deadline is :class:`fashionrec.api.body.BodyGuard`'s.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

KEEP_ALIVE_S = 5.0
"""An idle keep-alive connection is closed after this many seconds."""
MAX_HEADER_BYTES = 16 * 1024
"""Largest request line plus headers; a larger one gets a 400 and the connection is closed."""
GRACEFUL_SHUTDOWN_S = 10.0
"""On SIGTERM/Ctrl-C, requests in flight get this long to finish."""


def guarded_h11(header_timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing any connection whose next request's headers take over ``header_timeout_s``."""

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_overdue)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_overdue(self) -> None:
            self._header_timer = None
            waiting_for_headers = self.cycle is None or self.cycle.response_complete
            if waiting_for_headers and not self.transport.is_closing():
                self.transport.close()

    return GuardedH11Protocol


def uvicorn_options(header_timeout_s: float) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` that put this module's limits in force."""
    return {
        "http": guarded_h11(header_timeout_s),
        "timeout_keep_alive": KEEP_ALIVE_S,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
    }
