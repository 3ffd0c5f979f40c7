"""Reliability as a real client sees it: a real ``fashionrec serve`` process, real sockets, Python's urllib.

Guarantees tested here: a refused upload (413 over the limit, 415 not multipart, 422 bad parameter,
404 unknown path) reaches a client that sends its whole body before reading the answer, and the connection stays
usable afterwards; a body dribbled slower than ``--body-timeout`` gets a 408 and the connection is closed; headers
dribbled slower than ``--header-timeout`` get the connection closed; a refused body larger than the drain bound
is answered with ``Connection: close``; a client still sending after the server answered and closed reads its
answer (lingering close); a client gone mid-upload is no server error; an address that cannot be bound is one line
and exit 2; and the server keeps answering good requests throughout.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import select
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fashionrec.api import ApiSettings, create_app
from fashionrec.api.body import CLOSE, BodyGuard
from fashionrec.recommend import Recommender
from tests.conftest import DEMO_QUERIES, ServeProcess

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips this module (the fast tier)

PHOTO = (DEMO_QUERIES / "dress.jpg").read_bytes()
LIMIT_MB = 1
MIB = 1024 * 1024
BOUNDARY = "reliability-boundary"
TIMEOUT_S = 1.5  # --body-timeout and --header-timeout of the test server
WAIT_S = 60  # generous bound on any one wait below; never reached when the server behaves


def multipart(data: bytes, name: str = "file") -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"x.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


@pytest.fixture(scope="module")
def server(small_live_index: Path) -> Iterator[str]:
    """``fashionrec serve`` in its own process on a free port, over the 20-product index; yields its base URL."""
    process = ServeProcess(small_live_index, args=["--max-upload-mb", str(LIMIT_MB), "--body-timeout", str(TIMEOUT_S),
                                                   "--header-timeout", str(TIMEOUT_S)])
    try:
        yield process.start()
    finally:
        process.stop()


def urllib_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    """POST with urllib (which sends the whole body, then reads); the status and the JSON answer."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=WAIT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# refusals reach clients that send everything first ----------------------------------------------------------

@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "fragment"),
    [
        ("/api/recommend", multipart(PHOTO + bytes(5 * MIB)), MULTIPART, 413, "larger than the limit"),
        ("/api/recommend", multipart(bytes(50 * MIB)), MULTIPART, 413, "larger than the limit"),
        ("/api/recommend", bytes(3 * MIB), {"Content-Type": "text/plain"}, 415, "multipart/form-data"),
        ("/api/recommend?k=0", multipart(PHOTO + bytes(3 * MIB)), MULTIPART, 422, "k"),
        ("/api/recommend?filter=nosuchcolumn=x", multipart(PHOTO + bytes(3 * MIB)), MULTIPART, 400, "nosuchcolumn"),
        ("/api/nowhere", bytes(3 * MIB), {"Content-Type": "application/octet-stream"}, 404, ""),
    ],
    ids=["5MB-over-1MB-limit", "50MB", "not-multipart", "bad-k", "bad-filter", "unknown-path"],
)
def test_refusals_reach_a_client_that_sends_everything_first(
    server: str, path: str, body: bytes, headers: dict[str, str], status: int, fragment: str
) -> None:
    got, answer = urllib_post(server + path, body, headers)
    assert got == status
    assert fragment in answer["error"]


def test_chunked_upload_over_the_limit_reaches_urllib(server: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield multipart(b"")[:-len(f"\r\n--{BOUNDARY}--\r\n")]
        for _ in range(4):
            yield bytes(MIB)
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    request = urllib.request.Request(server + "/api/recommend", data=chunks(), headers=MULTIPART, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=WAIT_S)
    assert refused.value.code == 413 and "larger than the limit" in json.loads(refused.value.read())["error"]


def test_the_connection_stays_usable_after_a_drained_refusal(server: str) -> None:
    """The refused body is read to its end, so a keep-alive client can send its next request on the same socket."""
    conn = http.client.HTTPConnection(server.removeprefix("http://"), timeout=WAIT_S)
    try:
        conn.request("POST", "/api/recommend", body=multipart(bytes(3 * MIB)), headers=MULTIPART)
        refused = conn.getresponse()
        assert refused.status == 413 and refused.getheader("connection") != "close"
        refused.read()
        conn.request("POST", "/api/recommend?k=3", body=multipart(PHOTO), headers=MULTIPART)
        ok = conn.getresponse()
        assert ok.status == 200 and len(json.loads(ok.read())["results"]) == 3
    finally:
        conn.close()


# slow clients -----------------------------------------------------------------------------------------------

def dribble(base: str, head: bytes, drip: bytes) -> bytes:
    """Send ``head``, then ``drip`` one byte every 0.1 s until the server answers or closes; what it sent back."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT_S) as sock:
        sock.sendall(head)
        answer = b""
        for byte in drip:
            if select.select([sock], [], [], 0.1)[0]:
                break
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
        else:
            pytest.fail("the server let a client dribble the whole request")
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


def test_a_body_dribbled_too_slowly_gets_408_and_is_closed(server: str) -> None:
    body = multipart(PHOTO)
    head = (f"POST /api/recommend HTTP/1.1\r\nHost: x\r\nContent-Type: {MULTIPART['Content-Type']}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    answer = dribble(server, head, body[: int(WAIT_S / 0.1)])
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"connection: close" in rest.lower()
    assert b"did not arrive within" in rest


def test_a_client_still_sending_after_its_408_reads_it(server: str) -> None:
    """Lingering close: bytes that arrive after the server answered and closed are read and discarded, not reset."""
    body = multipart(PHOTO)
    head = (f"POST /api/recommend HTTP/1.1\r\nHost: x\r\nContent-Type: {MULTIPART['Content-Type']}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT_S) as sock:
        sock.sendall(head + body[:10])
        assert select.select([sock], [], [], WAIT_S)[0], "no answer after the body deadline"
        for start in range(10, 1010, 100):  # the client has not looked yet and keeps sending its body
            sock.sendall(body[start:start + 100])
        answer = b""
        while chunk := sock.recv(65536):  # a reset here (ConnectionResetError) would lose the 408
            answer += chunk
    head_part, _, json_part = answer.partition(b"\r\n\r\n")
    assert head_part.startswith(b"HTTP/1.1 408") and b"connection: close" in head_part.lower()
    assert "did not arrive within" in json.loads(json_part)["error"]


def test_headers_dribbled_too_slowly_get_the_connection_closed(server: str) -> None:
    answer = dribble(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-Slow: " + b"a" * int(WAIT_S / 0.1))
    assert answer == b""  # closed without an answer: there is no request to answer yet


def test_the_server_still_answers_after_the_slow_clients(server: str) -> None:
    status, answer = urllib_post(server + "/api/recommend?k=4", multipart(PHOTO), MULTIPART)
    assert status == 200 and len(answer["results"]) == 4
    with urllib.request.urlopen(server + "/healthz", timeout=WAIT_S) as response:
        assert json.loads(response.read())["status"] == "ok"


def test_a_port_in_use_or_a_host_that_does_not_resolve_is_one_line_and_exit_2(small_live_index: Path) -> None:
    env = {**os.environ, "FASHIONREC_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for host, fragment in (("127.0.0.1", f"127.0.0.1:{port}"), ("no-such-host.invalid", "does not resolve")):
            cmd = [sys.executable, "-m", "fashionrec", "serve", "--index-dir", str(small_live_index), "--host", host,
                   "--port", str(port)]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, check=False)
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 2, done.stderr
            assert len(lines) == 1 and "cannot listen on" in lines[0] and fragment in lines[0], done.stderr


# a client gone mid-upload (in-process ASGI) -----------------------------------------------------------------

def test_a_client_gone_mid_upload_is_not_a_server_error(small_live_index: Path, caplog: pytest.LogCaptureFixture) -> None:
    body = multipart(PHOTO)
    messages = [{"type": "http.request", "body": body[:200], "more_body": True}]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/recommend", "raw_path": b"/api/recommend", "query_string": b"", "root_path": "",
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
             "headers": [(b"host", b"x"), (b"content-type", MULTIPART["Content-Type"].encode()),
                         (b"content-length", str(len(body)).encode())]}
    with Recommender.open(small_live_index) as rec, caplog.at_level(logging.INFO):
        app = create_app(rec, settings=ApiSettings())
        asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]  (an unhandled error would be re-raised)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("disconnected" in r.getMessage() for r in caplog.records)
    assert sent[0]["status"] == 400  # built, never delivered: uvicorn drops answers to a gone client


# the guard alone (in-process ASGI) --------------------------------------------------------------------------

def run_guard(chunks: list[bytes], *, drain_bytes: int, body_timeout_s: float = 30, headers: list | None = None,
              stall: bool = False) -> tuple[list[dict], int]:
    """An app that answers 413 at once behind a :class:`BodyGuard`; the messages sent and the chunks read."""
    read = 0

    async def receive() -> dict:
        nonlocal read
        if read == len(chunks):
            await asyncio.sleep(3600 if stall else 0)
            return {"type": "http.disconnect"}
        read += 1
        return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks) or stall}

    async def app(scope: dict, receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 413, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"{}"})  # type: ignore[operator]

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    total = sum(len(c) for c in chunks)
    scope = {"type": "http", "headers": headers or [(b"content-length", str(total).encode())]}
    guard = BodyGuard(app, drain_bytes=drain_bytes, body_timeout_s=body_timeout_s)  # type: ignore[arg-type]
    asyncio.run(guard(scope, receive, send))  # type: ignore[arg-type]
    return sent, read


def test_guard_drains_the_body_before_answering() -> None:
    sent, read = run_guard([b"x" * 100] * 10, drain_bytes=10_000)
    assert read == 10 and CLOSE not in sent[0]["headers"]


def test_guard_closes_instead_of_draining_past_its_bound() -> None:
    sent, read = run_guard([b"x" * 100] * 10, drain_bytes=250, headers=[(b"transfer-encoding", b"chunked")])
    assert read < 10 and CLOSE in sent[0]["headers"]
    sent, read = run_guard([b"x" * 100] * 10, drain_bytes=250)  # declared length over the bound: not even tried
    assert read == 0 and CLOSE in sent[0]["headers"]


def test_guard_does_not_ask_for_a_body_the_client_waits_to_send() -> None:
    headers = [(b"content-length", b"1000"), (b"expect", b"100-continue")]
    sent, read = run_guard([b"x" * 1000], drain_bytes=10_000, headers=headers)
    assert read == 0 and CLOSE in sent[0]["headers"]


def test_guard_stops_draining_a_stalled_body_at_the_deadline() -> None:
    sent, read = run_guard([b"x" * 10], drain_bytes=10_000, body_timeout_s=0.05, stall=True,
                           headers=[(b"transfer-encoding", b"chunked")])
    assert read == 1 and sent[0]["status"] == 413 and CLOSE in sent[0]["headers"]
