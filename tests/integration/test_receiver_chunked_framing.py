"""Chunked bodies whose framing is broken, written on a raw socket to the real gunicorn receiver.

gunicorn's chunked reader raises its own parse errors from inside ``wsgi.input.read()``; each must be a
400 ``malformed`` that stores nothing and logs one line, never a 500 with a traceback.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared.models import WebhookEvent
from tests.raw_http import chunked, raw_connection, read_response, request_head
from tests.receiver_process import ReceiverHandle, running_receiver
from tests.webhook_factories import resend_body
from tests.webhook_requests import SECRET_A, SignedRequest, signed


def body_and_headers() -> tuple[bytes, dict[str, str]]:
    request: SignedRequest = signed(resend_body("delivered", "e-framing"), timestamp=int(time.time()))
    return request.body, request.headers


#: Broken framings of a signed body ``b``: what follows the header block, and whether the client then
#: stops sending (half-closes) instead of keeping the connection open.
FRAMINGS: dict[str, tuple[Callable[[bytes], bytes], bool]] = {
    "size line not hex (zz)": (lambda b: b"zz\r\n" + b + b"\r\n0\r\n\r\n", False),
    "negative size line (-5)": (lambda b: b"-5\r\n" + b[:5] + b"\r\n0\r\n\r\n", False),
    "empty size line": (lambda b: b"\r\n" + b + b"\r\n0\r\n\r\n", False),
    "bad chunk extension": (lambda b: b"%x;=oops\r\n%s\r\n0\r\n\r\n" % (len(b), b), False),
    "no CRLF after the data": (lambda b: b"%x\r\n%sXY0\r\n\r\n" % (len(b), b), False),
    "trailer line without a colon": (lambda b: chunked(b) + b"0\r\nnot a header\r\n\r\n", False),
    "trailer with a bad name": (lambda b: chunked(b) + b"0\r\nBad Name: x\r\n\r\n", False),
    "trailer with a bare LF": (lambda b: chunked(b) + b"0\r\nX-Trailer: 1\nX-More: 2\r\n\r\n", False),
    "final chunk without its CRLF": (lambda b: chunked(b) + b"0\r\n", True),
    "chunk data cut short": (lambda b: b"%x\r\n%s" % (len(b), b[: len(b) // 2]), True),
}


@pytest.fixture
def receiver(fresh_database_url: str, isolated_redis_url: str) -> Iterator[ReceiverHandle]:
    with running_receiver(
        database_url=fresh_database_url, broker_url=isolated_redis_url, secret=SECRET_A, log_level="INFO"
    ) as handle:
        yield handle


def stored_events(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(WebhookEvent)) or 0


@pytest.mark.parametrize("framing", list(FRAMINGS))
def test_receiver_broken_chunked_framing_is_400_malformed_and_stores_nothing(
    receiver: ReceiverHandle, session_factory: sessionmaker[Session], framing: str
) -> None:
    make_rest, half_close = FRAMINGS[framing]
    body, headers = body_and_headers()
    with raw_connection(receiver.url) as sock:
        sock.sendall(request_head(headers, chunked=True) + make_rest(body))
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        status, response = read_response(sock)
    assert status == 400
    assert json.loads(response.partition(b"\r\n\r\n")[2])["error"] == "bad_request"
    assert stored_events(session_factory) == 0


@pytest.mark.parametrize("framing", ["size line not hex (zz)", "trailer line without a colon"])
def test_receiver_broken_chunked_framing_logs_one_line_without_a_traceback(
    receiver: ReceiverHandle, framing: str
) -> None:
    make_rest, _ = FRAMINGS[framing]
    body, headers = body_and_headers()
    with raw_connection(receiver.url) as sock:
        sock.sendall(request_head(headers, chunked=True) + make_rest(body))
        read_response(sock)
    output = receiver.output()
    assert "Traceback" not in output
    assert [line for line in output.splitlines() if "webhook refused" in line and "chunked" in line]
