"""Transactional mail first: its reserve of the budget, its place at the head of the key's queue, and
its class kept through deferral, release and retries (real PostgreSQL, fakeredis, a fake Resend)."""

from __future__ import annotations

import json
from collections import Counter

import httpx
import pytest
from sqlalchemy import update

from shared.models import EmailMessage, Priority
from shared.rate_limit import RateLimiter
from shared.sending import pipeline
from tests.send_helpers import add_connector, batch_payload, rows, send_payload, sends

pytestmark = pytest.mark.integration


class TickingClock:
    """Milliseconds moving 2 a check, or as far as a test skips."""

    def __init__(self) -> None:
        self.now_ms = 1_700_000_000_000

    def __call__(self) -> int:
        self.now_ms += 2
        return self.now_ms

    def skip(self, seconds: float) -> None:
        self.now_ms += int(seconds * 1000)


@pytest.fixture
def bucket_clock() -> TickingClock:
    return TickingClock()


@pytest.fixture
def limiter(redis_prefix, fake_redis, bucket_clock) -> RateLimiter:
    """Buckets whose clock moves 2 ms a check: the request rate (1,000/s) never stands in the way,
    and an hour budget of 100 (a token every 36 s) refills nothing while a test runs."""
    return RateLimiter(fake_redis, key_prefix=redis_prefix, requests_per_second=1000, clock_ms=bucket_clock)


def dispatch_until_idle(ctx, key_hash, bucket_clock: TickingClock) -> None:
    """Run the key's dispatch as its scheduled runs would (each once the key's next request token is
    there: Resend's answers set the rate to 2 a second), until a run decides nothing more."""
    while True:
        bucket_clock.skip(0.7)
        if not pipeline.dispatch(ctx, key_hash):
            return


def send_spaced(ctx, bucket_clock: TickingClock, payload: dict, task_ref: str):
    """``pilot.send_email`` arriving once the key's next request token is there."""
    bucket_clock.skip(0.7)
    return pipeline.send_email(ctx, payload, task_ref=task_ref)


def by_status(factory, connector_id, priority: Priority) -> Counter[str]:
    return Counter(row.status for row in rows(factory, connector_id) if row.priority == priority)


def test_a_bulk_campaign_sends_down_to_the_reserve_and_transactional_mail_after_it_goes_at_once(
    ctx, resend, factory, key_hash, bucket_clock
) -> None:
    _, connector_id = add_connector(factory, per_hour=100, per_day=10_000, reserve_per_hour=20)
    recipients = [f"reader{n:04}@example.test" for n in range(1000)]

    pipeline.send_batch(ctx, batch_payload(connector_id, recipients), task_ref="campaign")
    dispatch_until_idle(ctx, key_hash, bucket_clock)
    campaign_requests = len(sends(resend))
    outcomes = [
        send_spaced(ctx, bucket_clock, send_payload(connector_id, f"reset{n}@example.test"), f"reset-{n}")
        for n in range(20)
    ]

    assert by_status(factory, connector_id, Priority.BULK) == {"sent": 80, "deferred": 920}
    assert [outcome.counts() for outcome in outcomes] == [{"sent": 1}] * 20
    assert len(sends(resend)) == campaign_requests + 20
    assert by_status(factory, connector_id, Priority.TRANSACTIONAL) == {"sent": 20}


def test_transactional_mail_over_the_whole_budget_waits_like_any_mail(
    ctx, resend, factory, bucket_clock
) -> None:
    _, connector_id = add_connector(factory, per_hour=100, per_day=10_000, reserve_per_hour=20)
    to = [f"r{n}@example.test" for n in range(5)]

    outcomes = [
        send_spaced(ctx, bucket_clock, send_payload(connector_id, to, idempotency_key=f"k{n}"), f"t{n}")
        for n in range(21)
    ]

    assert sum(outcome.counts().get("sent", 0) for outcome in outcomes) == 100
    assert by_status(factory, connector_id, Priority.TRANSACTIONAL) == {"sent": 100, "deferred": 5}


def test_a_caller_may_say_a_single_email_is_bulk_and_it_then_keeps_off_the_reserve(
    ctx, resend, factory
) -> None:
    _, connector_id = add_connector(factory, per_hour=10, per_day=10_000, reserve_per_hour=9)

    first = pipeline.send_email(
        ctx, send_payload(connector_id, "a@example.test", priority="bulk"), task_ref="1"
    )
    second = pipeline.send_email(
        ctx, send_payload(connector_id, "b@example.test", priority="bulk"), task_ref="2"
    )

    assert (first.counts(), second.counts()) == ({"sent": 1}, {"deferred": 1})
    assert by_status(factory, connector_id, Priority.BULK) == {"sent": 1, "deferred": 1}


def test_a_batch_said_transactional_may_use_the_reserve(ctx, resend, factory, key_hash) -> None:
    _, connector_id = add_connector(factory, per_hour=10, per_day=10_000, reserve_per_hour=9)
    recipients = [f"r{n}@example.test" for n in range(10)]

    pipeline.send_batch(ctx, batch_payload(connector_id, recipients, priority="transactional"), task_ref="b")

    assert by_status(factory, connector_id, Priority.TRANSACTIONAL) == {"sent": 10}


def test_transactional_rows_leave_in_the_first_request_ahead_of_older_bulk_rows(
    ctx, resend, factory, key_hash, bucket_clock
) -> None:
    _, connector_id = add_connector(factory)
    bulk = [f"bulk{n:03}@example.test" for n in range(150)]
    transactional = [f"reset{n}@example.test" for n in range(3)]

    pipeline.submit_batch(ctx, batch_payload(connector_id, bulk), task_ref="campaign")
    for n, to in enumerate(transactional):
        pipeline.submit_email(ctx, send_payload(connector_id, to), task_ref=f"reset-{n}")
    dispatch_until_idle(ctx, key_hash, bucket_clock)

    first = json.loads(sends(resend)[0].content)
    assert {email["to"][0] for email in first} >= set(transactional)
    assert len(first) == 100


def test_parked_rows_keep_their_class_through_their_release(
    ctx, resend, factory, clock, bucket_clock, key_hash
) -> None:
    _, connector_id = add_connector(factory, per_hour=100, per_day=10_000, reserve_per_hour=20)
    pipeline.send_batch(
        ctx, batch_payload(connector_id, [f"b{n}@example.test" for n in range(85)]), task_ref="b"
    )
    to = [f"t{n}@example.test" for n in range(5)]
    for n in range(5):  # 20 transactional emails spend the reserve; the 21st to 25th are parked
        send_spaced(ctx, bucket_clock, send_payload(connector_id, to, idempotency_key=f"t{n}"), f"t{n}")
    parked = Counter(row.priority for row in rows(factory, connector_id) if row.status == "deferred")
    with factory.begin() as session:  # their time has come, and the buckets have refilled
        session.execute(
            update(EmailMessage).where(EmailMessage.status == "deferred").values(next_attempt_at=clock.now)
        )
    bucket_clock.skip(86_400)

    pipeline.dispatch(ctx, key_hash)

    assert parked == {"bulk": 5, "transactional": 5}
    assert by_status(factory, connector_id, Priority.TRANSACTIONAL) == {"sent": 25}
    assert by_status(factory, connector_id, Priority.BULK) == {"sent": 85}


def test_a_transactional_email_whose_outcome_is_unknown_is_sent_again_as_transactional(
    ctx, resend, factory, clock, key_hash
) -> None:
    _, connector_id = add_connector(factory)
    resend.fail(httpx.ReadTimeout("slow"))
    pipeline.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    clock.advance(3600)
    pipeline.dispatch(ctx, key_hash)

    [row] = rows(factory, connector_id)
    assert (row.status, row.priority, row.attempts) == ("sent", "transactional", 2)
