"""How ``fashionrec serve`` runs the app under uvicorn: its HTTP limits and timeouts, in one place.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) and bounds the size of a request line plus
headers (``h11_max_incomplete_event_size``), but it has no deadline for the headers themselves: a client that
sends one header byte every few seconds keeps its connection forever. :func:`guarded_h11` adds that deadline
(the request line and headers must be complete within ``header_timeout_s`` of the connection opening, or of the
previous response on a keep-alive connection); the body deadline is :class:`fashionrec.api.body.BodyGuard`'s.

Every connection the server closes is closed *lingering*: once the answer is out, the write side is shut down
(the client sees the answer, then end-of-stream) and whatever the client still sends is read and thrown away for
at most ``LINGER_S`` seconds or ``LINGER_BYTES`` bytes before the socket is closed. Closing at once with bytes
still arriving makes the kernel reset the connection, and a reset throws away the answer the client has not read
yet: a client dribbling a body past its deadline, or sending a refused body larger than the drain bound, would see
a broken connection instead of its 408 or 413.

:func:`serve` binds the listening sockets itself before handing them to uvicorn, so that an address that cannot be
used (port taken, host that does not resolve) is one :class:`~fashionrec.errors.FashionrecError` instead of
uvicorn's log line and exit status.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable
from typing import Any, cast

from uvicorn.protocols.http.h11_impl import H11Protocol

from fashionrec.errors import FashionrecError

KEEP_ALIVE_S = 5.0
"""An idle keep-alive connection is closed after this many seconds."""
MAX_HEADER_BYTES = 16 * 1024
"""Largest request line plus headers; a larger one gets a 400 and the connection is closed."""
GRACEFUL_SHUTDOWN_S = 10.0
"""On SIGTERM/Ctrl-C, requests in flight get this long to finish."""
LINGER_S = 2.0
"""After the server closes a connection, what the client still sends is read and discarded for this long..."""
LINGER_BYTES = 1024 * 1024
"""... or up to this many bytes, whichever comes first; then the socket is closed."""


class _Linger(asyncio.Protocol):
    """Reads and discards what a closed connection's client still sends, until EOF or a bound; then closes."""

    def __init__(self, transport: asyncio.Transport, owner: asyncio.BaseProtocol, seconds: float, limit: int) -> None:
        self.transport, self.owner, self.left = transport, owner, limit
        self.timer = asyncio.get_running_loop().call_later(seconds, transport.close)

    def data_received(self, data: bytes) -> None:
        self.left -= len(data)
        if self.left < 0:
            self.transport.close()

    def eof_received(self) -> bool:
        return False  # the client is done too: the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()
        self.owner.connection_lost(exc)  # the HTTP protocol still learns that its connection is gone


class LingeringTransport:
    """A transport whose ``close()`` shuts down writing and lingers (see the module docstring); all else delegated."""

    def __init__(self, transport: asyncio.Transport, seconds: float = LINGER_S, limit: int = LINGER_BYTES) -> None:
        self._transport, self._seconds, self._limit = transport, seconds, limit
        self.lingering = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def close(self) -> None:
        transport = self._transport
        if self.lingering or transport.is_closing():
            return
        if not transport.can_write_eof():
            transport.close()
            return
        self.lingering = True
        transport.set_protocol(_Linger(transport, transport.get_protocol(), self._seconds, self._limit))
        transport.write_eof()  # after what is still buffered: the answer goes out first
        transport.resume_reading()

    def close_now(self) -> None:
        self._transport.close()


def guarded_h11(header_timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing any connection whose next request's headers take over ``header_timeout_s``."""

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(cast(asyncio.Transport, LingeringTransport(transport)))
            self._arm_header_timer()

        def shutdown(self) -> None:
            super().shutdown()
            transport = cast(LingeringTransport, self.transport)
            if transport.lingering:
                transport.close_now()  # shutting down: no lingering

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


def bind(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to every address ``host`` resolves to (as asyncio's ``create_server`` would bind them).

    Raises :class:`FashionrecError` (one line) when ``host`` does not resolve or an address cannot be bound.
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise FashionrecError(f"cannot listen on {host!r}: the host does not resolve ({exc.strerror})") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise FashionrecError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sockets


def serve(app: Any, host: str, port: int, header_timeout_s: float, ready: Callable[[int], None] | None = None) -> None:
    """Serve ``app`` on ``host:port`` under uvicorn with this module's limits until SIGTERM or Ctrl-C.

    The address is bound first (:func:`bind`); ``ready`` then gets the port actually bound (``port`` 0 picks one).
    """
    import uvicorn

    sockets = bind(host, port)
    try:
        if ready is not None:
            ready(int(sockets[0].getsockname()[1]))
        config = uvicorn.Config(app, host=host, port=port, log_level="info", **uvicorn_options(header_timeout_s))
        server = uvicorn.Server(config)
        try:
            server.run(sockets=sockets)
        except KeyboardInterrupt:
            pass  # uvicorn re-raises Ctrl-C once it has shut down gracefully
    finally:
        for sock in sockets:
            sock.close()
    if not server.started:
        sys.exit(3)  # uvicorn's start-up failure status (e.g. the app's start-up raised), as uvicorn.run exits
