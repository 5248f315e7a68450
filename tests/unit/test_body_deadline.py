"""webhook_receiver.body_deadline: a body must arrive whole within its deadline, however it is paced.

The slow stream here waits cooperatively (``gevent.sleep``), as a patched socket does in the gevent
worker, without patching the test process.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import gevent
import pytest
from werkzeug.exceptions import RequestTimeout

from webhook_receiver.body_deadline import DeadlineInput, body_deadline


class TricklingStream:
    """A WSGI input that gives ``body`` one byte per ``pace`` seconds, and a read returns only when
    it has ``size`` bytes (as gunicorn's reader loops over ``recv`` calls)."""

    def __init__(self, body: bytes, pace: float) -> None:
        self._body = io.BytesIO(body)
        self._pace = pace

    def read(self, size: int = -1, /) -> bytes:
        data = b""
        while size < 0 or len(data) < size:
            gevent.sleep(self._pace)
            byte = self._body.read(1)
            if not byte:
                break
            data += byte
        return data


def test_deadline_input_raises_408_when_the_body_trickles_past_the_deadline() -> None:
    stream = DeadlineInput(TricklingStream(b"x" * 1000, pace=0.01), seconds=0.1)
    with pytest.raises(RequestTimeout, match=r"not received within 0\.1 s"):
        stream.read(1000)


def test_deadline_input_returns_a_body_that_arrives_in_time() -> None:
    stream = DeadlineInput(TricklingStream(b'{"a": 1}', pace=0.001), seconds=5)
    assert stream.read(-1) == b'{"a": 1}'


def test_deadline_input_refuses_a_read_after_the_deadline() -> None:
    stream = DeadlineInput(io.BytesIO(b"late"), seconds=0)
    with pytest.raises(RequestTimeout):
        stream.read(4)


def test_body_deadline_leaves_the_app_as_it_is_outside_gevent() -> None:
    def app(environ: dict[str, object], start_response: object) -> Iterable[bytes]:
        return [b""]

    assert body_deadline(app) is app  # type: ignore[arg-type]
