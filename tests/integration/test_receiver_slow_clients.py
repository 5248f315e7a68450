"""Slow clients against the real gunicorn receiver: a client trickling its request is cut off.

A header block must arrive within ``HEADER_TIMEOUT_S`` and a body within ``BODY_TIMEOUT_S``; the client
here would trickle for ``GIVE_UP_S`` (far longer), so being cut off before it gives up is the behaviour
asserted, and the measured moment is printed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest

from tests.raw_http import raw_connection, request_head
from tests.receiver_process import ReceiverHandle, running_receiver
from tests.webhook_requests import PATH, SECRET_A
from webhook_receiver.body_deadline import BODY_TIMEOUT_S
from webhook_receiver.gunicorn_conf import HEADER_TIMEOUT_S

#: How long the slow client keeps trickling before giving up on being cut off.
GIVE_UP_S = 4 * max(HEADER_TIMEOUT_S, BODY_TIMEOUT_S)
#: Seconds between two trickled pieces.
PACE_S = 0.5


@pytest.fixture
def receiver(fresh_database_url: str, isolated_redis_url: str) -> Iterator[ReceiverHandle]:
    with running_receiver(
        database_url=fresh_database_url, broker_url=isolated_redis_url, secret=SECRET_A
    ) as handle:
        yield handle


def trickle(receiver: ReceiverHandle, first: bytes, piece: bytes) -> tuple[bytes, float]:
    """Send ``first``, then ``piece`` every ``PACE_S`` until the server answers or hangs up (or
    ``GIVE_UP_S`` pass); returns what the server sent and after how many seconds."""
    started = time.monotonic()
    with raw_connection(receiver.url, timeout=PACE_S) as sock:
        sock.sendall(first)
        while time.monotonic() - started < GIVE_UP_S:
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                try:
                    sock.sendall(piece)
                except (BrokenPipeError, ConnectionResetError):
                    return b"", time.monotonic() - started
                continue
            except ConnectionResetError:
                answer = b""
            seconds = time.monotonic() - started
            # The rest of an answer may come in later segments; the server then closes.
            with contextlib.suppress(TimeoutError, ConnectionResetError):
                while answer and (more := sock.recv(65536)):
                    answer += more
            return answer, seconds
    pytest.fail(f"the server was still reading the trickled request after {GIVE_UP_S:g} s")


def test_receiver_hangs_up_on_a_client_trickling_its_header_block(receiver: ReceiverHandle) -> None:
    first = f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
    answer, seconds = trickle(receiver, first, b"X-Slow: 1\r\n")
    print(f"header trickler cut off after {seconds:.1f} s (header timeout {HEADER_TIMEOUT_S} s)")
    assert answer == b""


def test_receiver_answers_408_to_a_client_trickling_its_body(receiver: ReceiverHandle) -> None:
    first = request_head({"Content-Type": "application/json"}, length=10_000) + b"{"
    answer, seconds = trickle(receiver, first, b" ")
    print(f"body trickler cut off after {seconds:.1f} s (body timeout {BODY_TIMEOUT_S:g} s)")
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"error":"request_timeout"' in answer
