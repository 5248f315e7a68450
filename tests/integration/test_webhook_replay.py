"""The same delivery replayed 1,000 times, concurrently, through a real gunicorn: one row, one metric."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from shared.models import EmailMessage, EmailMetric, WebhookEvent
from tests.receiver_process import ReceiverHandle, running_receiver
from tests.webhook_factories import make_ledger, resend_body
from tests.webhook_requests import SECRET_A, signed
from worker.events.processing import process_event

REPLAYS = 1_000


@pytest.fixture
def receiver(fresh_database_url: str, isolated_redis_url: str) -> Iterator[ReceiverHandle]:
    with running_receiver(
        database_url=fresh_database_url, broker_url=isolated_redis_url, secret=SECRET_A
    ) as handle:
        yield handle


def count(factory: sessionmaker[Session], model: type) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_webhook_replayed_1000_times_concurrently_stores_one_row_and_one_metric(
    receiver: ReceiverHandle, session_factory: sessionmaker[Session]
) -> None:
    # Given a sent email in the ledger and one signed delivery of its `delivered` event
    with transaction(session_factory) as session:
        sent = make_ledger(session)
    request = signed(resend_body("delivered", sent.resend_email_id), timestamp=int(time.time()))
    # When the delivery arrives 1,000 times at once
    with httpx.Client(limits=httpx.Limits(max_connections=32), timeout=30) as http:

        def post(_: int) -> tuple[int, str]:
            # Like Svix, resend a delivery whose connection broke (gunicorn may close an idle
            # keep-alive connection just as the client reuses it on a loaded machine).
            for attempt in range(3):
                try:
                    response = http.post(receiver.webhook_url, content=request.body, headers=request.headers)
                    return response.status_code, response.json()["status"]
                except httpx.TransportError:
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

        with ThreadPoolExecutor(max_workers=32) as pool:
            answers = Counter(pool.map(post, range(REPLAYS)))
    # Then every copy is acknowledged, and exactly one is stored
    assert answers == {(200, "stored"): 1, (200, "duplicate"): REPLAYS - 1}
    assert count(session_factory, WebhookEvent) == 1
    # And processing it (concurrently, as redelivered tasks would) adds one metric row
    with session_factory() as session:
        event_id = session.scalars(select(WebhookEvent.id)).one()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: process_event(session_factory, event_id), range(16)))
    assert count(session_factory, EmailMetric) == 1
    with session_factory() as session:
        assert session.get_one(EmailMessage, sent.message_id).status == "delivered"


def chunked_post(url: str, body: bytes, headers: dict[str, str], *, chunk: int = 16 * 1024) -> int:
    """POST ``body`` with ``Transfer-Encoding: chunked`` and no Content-Length; returns the status.

    A server refusing the body answers as soon as the cap is passed and closes: the rest of the
    upload may then fail (broken pipe, reset), and the answer is read from the socket regardless.
    """
    parts = urlsplit(url)
    lines = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Transfer-Encoding: chunked"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=30) as sock:
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            for start in range(0, len(body), chunk):
                piece = body[start : start + chunk]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before the whole body was sent
        status_line = sock.makefile("rb").readline()
    return int(status_line.split()[1])


def test_gunicorn_chunked_body_over_the_cap_is_413(
    receiver: ReceiverHandle, session_factory: sessionmaker[Session]
) -> None:
    request = signed(b'{"pad": "' + b"x" * 600_000 + b'"}', timestamp=int(time.time()))
    assert chunked_post(receiver.webhook_url, request.body, request.headers) == 413
    assert count(session_factory, WebhookEvent) == 0


def test_gunicorn_chunked_body_under_the_cap_is_stored(
    receiver: ReceiverHandle, session_factory: sessionmaker[Session]
) -> None:
    request = signed(resend_body("sent", "e-1"), timestamp=int(time.time()))
    assert chunked_post(receiver.webhook_url, request.body, request.headers, chunk=50) == 200
    assert count(session_factory, WebhookEvent) == 1
