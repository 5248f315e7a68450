"""A paused organization's transactional mail still goes, but at a small rate of its own (10 a minute
by default); the rest waits ``deferred`` and goes later, and other organizations are untouched. A row
the connector's budget then defers does not spend that rate. (Real PostgreSQL and Redis, a fake
Resend, buckets on the test's clock.)"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from shared.models import MessageStatus, Priority
from shared.rate_limit import ConnectorLimits, RateLimiter
from shared.reputation import guard
from shared.sending import pipeline
from tests.integration.test_reputation_hold import pause, recipients_sent, statuses
from tests.send_helpers import FakeClock, add_connector, rows, send_payload

pytestmark = pytest.mark.integration

Factory = sessionmaker[Session]
RATE = 10  # PILOT_REPUTATION_PAUSED_TRANSACTIONAL_PER_MINUTE's default


@pytest.fixture
def limiter(redis_prefix: str, real_redis: redis.Redis, clock: FakeClock) -> RateLimiter:
    """Buckets in the real Redis on the send context's clock: they refill only when the test moves it."""
    return RateLimiter(
        real_redis, key_prefix=redis_prefix, clock_ms=lambda: int(clock.now.timestamp() * 1000)
    )


def resets(connector: uuid.UUID, prefix: str, n: int = 50) -> dict:
    """``n`` password resets in one transactional send."""
    recipients = [f"{prefix}{i}@example.test" for i in range(n)]
    return send_payload(connector, recipients, priority=Priority.TRANSACTIONAL.value)


def test_only_the_small_rate_leaves_each_minute_and_the_rest_goes_later(
    ctx, resend, factory, key_hash, clock
) -> None:
    org, connector = add_connector(factory)
    pause(factory, org, connector)
    pipeline.submit_email(ctx, resets(connector, "reset"), task_ref="resets")

    sent_each_minute = []
    for _ in range(5):
        before = statuses(factory, connector, "reset")["sent"]
        pipeline.dispatch(ctx, key_hash)
        sent_each_minute.append(statuses(factory, connector, "reset")["sent"] - before)
        clock.advance(60)

    assert sent_each_minute == [RATE] * 5
    assert recipients_sent(resend) == Counter({f"reset{i}@example.test": 1 for i in range(50)})


def test_rows_over_the_small_rate_wait_deferred_with_the_reason(ctx, resend, factory, key_hash) -> None:
    org, connector = add_connector(factory)
    pause(factory, org, connector)
    pipeline.submit_email(ctx, resets(connector, "reset"), task_ref="resets")

    pipeline.dispatch(ctx, key_hash)

    waiting = [row for row in rows(factory, connector) if row.status == MessageStatus.DEFERRED]
    assert len(waiting) == 50 - RATE
    assert all(row.last_error.startswith(guard.RATE_PREFIX) for row in waiting)
    assert all("at most 10 a minute" in row.last_error for row in waiting)


def test_another_organizations_transactional_mail_is_not_limited(ctx, resend, factory, key_hash) -> None:
    org, connector = add_connector(factory)
    _, other = add_connector(factory)
    pause(factory, org, connector)
    pipeline.submit_email(ctx, resets(connector, "reset"), task_ref="resets")
    pipeline.submit_email(ctx, resets(other, "other"), task_ref="other")

    pipeline.dispatch(ctx, key_hash)

    assert statuses(factory, other, "other") == Counter({"sent": 50})
    assert statuses(factory, connector, "reset") == Counter({"sent": RATE, "deferred": 50 - RATE})


def test_a_resume_sends_what_waited_for_the_small_rate_at_once(ctx, resend, factory, key_hash, clock) -> None:
    org, connector = add_connector(factory)
    pause(factory, org, connector)
    pipeline.submit_email(ctx, resets(connector, "reset"), task_ref="resets")
    pipeline.dispatch(ctx, key_hash)

    with transaction(factory) as session:
        resumed = guard.resume(session, org, actor="ops", now=clock())
    clock.advance(1)
    pipeline.dispatch(ctx, key_hash)

    assert resumed.released == 50 - RATE
    assert statuses(factory, connector, "reset") == Counter({"sent": 50})


def spend_budget(limiter: RateLimiter, connector: uuid.UUID, *, per_hour: int, leave: int) -> None:
    """Take the connector's hour budget down to ``leave`` emails."""
    limits = ConnectorLimits(per_hour=per_hour, per_day=10_000)
    assert limiter.acquire_emails(connector, per_hour - leave, limits).granted


def test_rows_the_connector_budget_defers_leave_the_paused_rate_as_it_was(
    ctx, resend, factory, key_hash, limiter
) -> None:
    org, connector = add_connector(factory, per_hour=20)
    pause(factory, org, connector)
    spend_budget(limiter, connector, per_hour=20, leave=0)
    before = limiter.peek_paused_emails(org, per_minute=RATE)

    pipeline.submit_email(ctx, resets(connector, "reset", n=5), task_ref="resets")
    pipeline.dispatch(ctx, key_hash)

    waiting = [row for row in rows(factory, connector) if row.status == MessageStatus.DEFERRED]
    assert len(waiting) == 5 and all("budget" in row.last_error for row in waiting)
    assert limiter.peek_paused_emails(org, per_minute=RATE) == before


def test_only_the_rows_the_connector_budget_pays_spend_the_paused_rate(
    ctx, resend, factory, key_hash, limiter
) -> None:
    org, connector = add_connector(factory, per_hour=20)
    pause(factory, org, connector)
    spend_budget(limiter, connector, per_hour=20, leave=3)

    pipeline.submit_email(ctx, resets(connector, "reset", n=5), task_ref="resets")
    pipeline.dispatch(ctx, key_hash)

    assert statuses(factory, connector, "reset") == Counter({"sent": 3, "deferred": 2})
    assert limiter.peek_paused_emails(org, per_minute=RATE)[1] == RATE - 3
