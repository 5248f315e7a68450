"""A request body must arrive within ``BODY_TIMEOUT_S`` of the request reaching the app, or it is a 408.

gunicorn bounds the header block but not the body, and a socket timeout bounds each ``recv``, not a
``read`` that loops over many. A ``gevent.Timeout`` bounds the whole read; it needs the gevent worker,
and elsewhere (Flask's test client, a threaded server) the input is left as it is.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

import gevent
from werkzeug.exceptions import RequestTimeout

if TYPE_CHECKING:
    from _typeshed.wsgi import InputStream, StartResponse, WSGIApplication, WSGIEnvironment

#: Seconds for a whole body to arrive. Resend posts a few kB from a data centre in one go, and the
#: largest body we take (256 KiB) needs under 10 s even at 256 kbit/s; Svix itself gives up after 15 s.
BODY_TIMEOUT_S = 10.0

T = TypeVar("T")


class DeadlineInput:
    """A WSGI input whose reads raise :class:`RequestTimeout` (408) once ``seconds`` have passed since it
    was made, however the client paces its bytes."""

    def __init__(self, stream: InputStream, seconds: float) -> None:
        self._stream = stream
        self._seconds = seconds
        self._deadline = time.monotonic() + seconds

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (all when negative), within the deadline."""
        return self._bounded(self._stream.read, size)

    def readline(self, size: int = -1, /) -> bytes:
        """One line, within the deadline."""
        return self._bounded(self._stream.readline, size)

    def readlines(self, hint: int = -1, /) -> list[bytes]:
        """The remaining lines, within the deadline."""
        return self._bounded(self._stream.readlines, hint)

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def _bounded(self, method: Callable[[int], T], size: int) -> T:
        timeout = RequestTimeout(f"request body not received within {self._seconds:g} s")
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise timeout
        # Raised inside gunicorn's reader, which marks the body failed: the connection is then closed.
        with gevent.Timeout(left, timeout):
            return method(size)


def body_deadline(inner: WSGIApplication, *, seconds: float = BODY_TIMEOUT_S) -> WSGIApplication:
    """``inner`` reading its request bodies through :class:`DeadlineInput`, when running under gevent."""
    if not gevent_patched():
        return inner

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ["wsgi.input"] = DeadlineInput(environ["wsgi.input"], seconds)
        return inner(environ, start_response)

    return app


def gevent_patched() -> bool:
    """Whether gevent has patched this process's sockets (gunicorn's gevent worker does, first thing)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))
