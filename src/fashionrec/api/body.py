"""Every refusal reaches the client, and no request body may take longer than a deadline to arrive.

Most HTTP clients (Python's urllib and http.client, many SDKs) send the whole request body before they read the
response. If the server answers early (a 413 as soon as an upload passes the limit, a 415 or 422 before the body
is read) and then closes the connection with the rest of the body unread, the kernel resets the connection and
such a client sees a broken pipe instead of the answer. :class:`BodyGuard` therefore holds the response back
until the rest of the body has been read and thrown away, up to ``drain_bytes`` more bytes and within the
request's deadline. Past either bound (or when a client sent ``Expect: 100-continue`` and nothing yet), the
response goes out at once with ``Connection: close``: a bounded amount of work per refusal, whatever was sent.

The deadline: the whole body must arrive within ``body_timeout_s`` of the request line and headers; a body
dribbled slower gets a 408 and the connection is closed. Waiting for a body holds one coroutine and at most the
upload limit in memory, never a thread or the model (inference starts only once the upload is complete).
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fashionrec.api.errors import ApiError

CLOSE = (b"connection", b"close")


def body_timeout(seconds: float) -> ApiError:
    return ApiError(408, f"the request body did not arrive within {seconds:g} s", {"body_timeout_s": seconds})


class _Body:
    """What one request's body has done so far, and how to read (or drain) the rest of it within the deadline."""

    def __init__(self, receive: Receive, timeout_s: float) -> None:
        self._receive = receive
        self.timeout_s = timeout_s
        self.deadline = asyncio.get_running_loop().time() + timeout_s
        self.complete = False
        self.timed_out = False
        self.received = 0

    async def next(self) -> Message:
        """The next message from the client, or a 408 (:class:`ApiError`) once the deadline has passed."""
        remaining = self.deadline - asyncio.get_running_loop().time()
        try:
            if remaining <= 0:
                raise TimeoutError
            message = await asyncio.wait_for(self._receive(), remaining)
        except TimeoutError:
            self.timed_out = True
            raise body_timeout(self.timeout_s) from None
        if message["type"] == "http.disconnect":
            self.complete = True
        else:
            self.received += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
        return message

    async def drain(self, limit: int) -> bool:
        """Read and discard the rest of the body, at most ``limit`` bytes; whether the body is now complete."""
        start = self.received
        while not self.complete:
            if self.timed_out or self.received - start > limit:
                return False
            try:
                await self.next()
            except ApiError:
                return False
        return True


class BodyGuard:
    """ASGI middleware: the body deadline on every request, and a drained body before every early answer."""

    def __init__(self, app: ASGIApp, drain_bytes: int, body_timeout_s: float) -> None:
        self.app = app
        self.drain_bytes = drain_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope.get("headers", ())}
        length = headers.get(b"content-length", b"").strip()
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if not chunked and (not length.isdigit() or int(length) == 0):
            await self.app(scope, receive, send)  # no body: nothing to wait for or to drain
            return
        body = _Body(receive, self.body_timeout_s)
        too_long_to_drain = length.isdigit() and int(length) > self.drain_bytes
        awaits_continue = headers.get(b"expect", b"").lower() == b"100-continue"
        started = False

        async def guarded_receive() -> Message:
            if started or body.complete:
                return await receive()
            return await body.next()

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                started = True
                if not body.complete:
                    skip = too_long_to_drain or (awaits_continue and body.received == 0)
                    if skip or not await body.drain(self.drain_bytes):
                        message = {**message, "headers": [*message.get("headers", ()), CLOSE]}
            await send(message)

        await self.app(scope, guarded_receive, guarded_send)
