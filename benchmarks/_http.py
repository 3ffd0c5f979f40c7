"""The HTTP client side the server benchmarks share: a free port, one request, a multipart photo upload."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

KEY = "benchmark-key-0123456789"  # the API key the benchmarks start their servers with
BOUNDARY = "bench-boundary"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 120) -> tuple[int, bytes]:
    """One request: (status, body), an HTTP error status included."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def multipart(photo: bytes, fields: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """A multipart body with ``fields`` and the photo as field ``file``, and its Content-Type header."""
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="p.jpg"\r\n\r\n'.encode()
                 + photo + b"\r\n")
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode(), {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
