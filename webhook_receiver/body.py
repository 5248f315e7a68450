"""Read a request body whole, or refuse it: never truncated silently.

Werkzeug cuts a chunked body without ``Content-Length`` at the limit in one ``read``, and the cut body
would pass as valid; reading until EOF and counting makes that a 413 too. Broken chunked framing
surfaces from gunicorn's parser during the read: the client's error, a 400.
"""

from __future__ import annotations

from typing import Protocol

from gunicorn.http.errors import ParseException
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge


class Readable(Protocol):
    """A byte stream (a WSGI input, or Werkzeug's ``LimitedStream`` over one)."""

    def read(self, size: int = ..., /) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end."""
        ...


#: Size of each read; Resend bodies are a few kB, so most requests take one read.
CHUNK_BYTES = 64 * 1024


def read_body(stream: Readable, limit: int, *, chunk_bytes: int = CHUNK_BYTES) -> bytes:
    """The full body from ``stream``; raises ``RequestEntityTooLarge`` (413) past ``limit`` bytes and
    ``BadRequest`` (400) for chunked framing the server cannot decode."""
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            # Ask for at most one byte beyond the limit: that byte alone proves the body is too large.
            chunk = stream.read(min(chunk_bytes, limit + 1 - size))
        except ParseException as exc:
            # The class names the flaw; its message would echo the client's bytes into the log.
            raise BadRequest(f"malformed chunked body ({type(exc).__name__})") from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge(f"webhook body larger than {limit} bytes")
        chunks.append(chunk)
