"""Oversized request heads, written on a raw socket to the real gunicorn receiver: gunicorn refuses
them itself (431 for header fields, 414 for the request line), before the app, with no traceback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.raw_http import raw_connection, read_response, request_head
from tests.receiver_process import ReceiverHandle, running_receiver
from tests.webhook_requests import PATH, SECRET_A

HEADS = {
    "a header field over 8190 bytes": (request_head({"X-Big": "a" * 9000}, length=0), 431),
    "more than 100 header fields": (request_head({f"X-Field-{i}": "1" for i in range(150)}, length=0), 431),
    "a request line over 4094 bytes": (f"POST {PATH}?{'a' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 414),
}


@pytest.fixture
def receiver(fresh_database_url: str, isolated_redis_url: str) -> Iterator[ReceiverHandle]:
    with running_receiver(
        database_url=fresh_database_url, broker_url=isolated_redis_url, secret=SECRET_A
    ) as handle:
        yield handle


@pytest.mark.parametrize("head", list(HEADS))
def test_receiver_refuses_an_oversized_request_head(receiver: ReceiverHandle, head: str) -> None:
    raw, expected = HEADS[head]
    with raw_connection(receiver.url) as sock:
        sock.sendall(raw)
        status, _ = read_response(sock)
    assert status == expected
    assert "Traceback" not in receiver.output()
