"""Issue 14, item 12: signed deliveries keep being answered while 200 slow clients hold sockets open.

Half the crowd trickles a header line per second, half a complete head and then a body byte per
second; whatever the receiver cuts off is replaced at once, so 200 stay open for the whole hold.
Meanwhile a signed delivery is posted every ``EVERY_S``: each must be answered 200 within the
client's socket timeout and stored. The latencies are printed (the issue asks for under 1 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared.models import WebhookEvent
from tests.receiver_process import running_receiver
from tests.reliability.harness import size
from tests.slow_clients import slow_crowd
from tests.webhook_factories import resend_body
from tests.webhook_requests import SECRET_A, signed

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(size(120, 240))]

SLOW_SOCKETS = 200
HOLD_S = size(12, 20)
EVERY_S = 2.0
#: A delivery not answered within this many seconds fails the test (the client's socket timeout).
CLIENT_TIMEOUT_S = 5.0


def test_receiver_answers_signed_deliveries_while_200_slow_clients_hold_sockets(
    fresh_database_url: str,
    isolated_redis_url: str,
    session_factory: sessionmaker[Session],
    figures: Callable[[str], None],
) -> None:
    answers: list[tuple[int, str, float]] = []
    with (
        running_receiver(
            database_url=fresh_database_url, broker_url=isolated_redis_url, secret=SECRET_A
        ) as receiver,
        slow_crowd(receiver.url, sockets=SLOW_SOCKETS) as crowd,
    ):
        started = time.monotonic()
        while time.monotonic() - started < HOLD_S:
            time.sleep(EVERY_S)
            request = signed(resend_body("delivered", f"e-slow-{len(answers)}"), timestamp=int(time.time()))
            sent = time.monotonic()
            # A new connection each time, as webhook senders mostly do: the receiver must accept it.
            response = httpx.post(
                receiver.webhook_url, content=request.body, headers=request.headers, timeout=CLIENT_TIMEOUT_S
            )
            answers.append((response.status_code, response.json()["status"], time.monotonic() - sent))
    with session_factory() as session:
        stored = session.scalar(select(func.count()).select_from(WebhookEvent))

    latencies = ", ".join(f"{seconds * 1000:.0f}" for _, _, seconds in answers)
    line = (
        f"receiver under {SLOW_SOCKETS} slow sockets for {HOLD_S} s: {len(answers)} signed deliveries "
        f"answered in [{latencies}] ms; {crowd.summary()}"
    )
    print(line)
    figures(line)
    assert len(answers) >= 4
    assert [(status, outcome) for status, outcome, _ in answers] == [(200, "stored")] * len(answers)
    assert stored == len(answers)
    assert crowd.opened >= SLOW_SOCKETS
