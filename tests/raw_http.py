"""HTTP/1.1 written byte by byte on a plain socket, for requests no HTTP client would send.

with raw_connection(receiver.url) as sock:
    sock.sendall(request_head(PATH, headers, chunked=True) + b"zz\\r\\n...")
    status = read_status(sock)
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

from tests.webhook_requests import PATH


def address_of(url: str) -> tuple[str, int]:
    """``(host, port)`` of an ``http://`` URL."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


@contextlib.contextmanager
def raw_connection(url: str, *, timeout: float = 10.0) -> Iterator[socket.socket]:
    """A TCP connection to the server of ``url`` whose reads give up after ``timeout`` seconds."""
    with socket.create_connection(address_of(url), timeout=timeout) as sock:
        yield sock


def request_head(
    headers: Mapping[str, str], *, path: str = PATH, chunked: bool = False, length: int | None = None
) -> bytes:
    """A POST request line and header block (ending with the blank line)."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(body: bytes, *, size: int = 64) -> bytes:
    """``body`` framed as well-formed chunks, without the last chunk and trailer section."""
    pieces = [body[start : start + size] for start in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """The status and the raw bytes of the response the server sends before it closes or goes quiet."""
    received = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while b"\r\n\r\n" not in received or not _complete(received):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    if not received.startswith(b"HTTP/1."):
        raise ConnectionError(f"no HTTP response, got {received[:80]!r}")
    return int(received.split(b" ", 2)[1]), received


def _complete(received: bytes) -> bool:
    head, _, body = received.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False
