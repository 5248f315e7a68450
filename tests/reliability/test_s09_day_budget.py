"""Scenario 9: the day budget is spent with sends pending.

The pending rows must be parked in PostgreSQL (``deferred`` with ``next_attempt_at``), not left on
the broker as countdowns (which Redis redelivers after its visibility timeout). Then the window
refills and each is delivered once. A day cannot pass in a test, so the clock is injected at the
two places it matters: the day bucket is written back to full in Redis (as a day's refill would
leave it), and the beat's release runs with ``now`` at the rows' ``next_attempt_at``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import func, select

from shared.models import EmailMessage
from shared.rate_limit import DAY_MS, HOUR_MS, connector_bucket_key
from tests.reliability.harness import Stack, recipients, send_context, settle, size, stack
from tests.reliability.servers import RedisServer
from tests.sandbox_process import running_sandbox
from tests.worker_process import running_worker
from worker.beat import maintenance

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(size(180, 600))]

PER_DAY = size(50, 500)
PENDING = size(50, 500)


def refill(s: Stack, connector_id: object) -> None:
    """Write the connector's hour and day buckets back to full, as a day's refill leaves them."""
    client = redis.Redis.from_url(s.redis.url)
    try:
        seconds, micros = client.time()
        now_ms = seconds * 1000 + micros // 1000
        prefix = s.env["PILOT_REDIS_PREFIX"]
        client.set(connector_bucket_key(prefix, connector_id), f"{now_ms} 0 {HOUR_MS} 0 {DAY_MS}", px=DAY_MS)
    finally:
        client.close()


def test_spent_day_budget_parks_pending_sends_in_postgres_and_sends_them_once_after_the_refill(
    fresh_database_url: str, redis_server: RedisServer, figures: Callable[[str], None]
) -> None:
    started = time.monotonic()
    with (
        running_sandbox(rate_limit_per_second=0) as sandbox,
        stack(fresh_database_url, redis_server, sandbox) as s,
        running_worker(s.env, concurrency=2, pool="prefork"),
    ):
        connector_id = s.connector(per_hour=PER_DAY, per_day=PER_DAY)
        spend = recipients("spend", PER_DAY)
        s.outbox(connector_id, spend)
        settle(lambda: s.statuses(connector_id)["sent"] == PER_DAY, "the day's budget spent", timeout=120)

        pending = recipients("pending", PENDING)
        s.outbox(connector_id, pending)
        settle(
            lambda: s.statuses(connector_id)["deferred"] == PENDING and s.broker_backlog() == 0,
            "every pending send parked, nothing left on the broker",
            timeout=120,
            state=lambda: (s.statuses(connector_id), s.broker_backlog()),
        )
        with s.factory() as session:
            soonest, latest = session.execute(
                select(func.min(EmailMessage.next_attempt_at), func.max(EmailMessage.next_attempt_at)).where(
                    EmailMessage.connector_id == connector_id, EmailMessage.status == "deferred"
                )
            ).one()
        parked_at = datetime.now(UTC)
        assert soonest - parked_at > timedelta(minutes=1)  # a stored wait, not a countdown

        refill(s, connector_id)
        ctx = send_context(s, lambda name, kwargs, countdown: s.app.send_task(name, kwargs=kwargs))
        try:
            released = maintenance.release_deferred(s.factory, ctx, now=latest)
        finally:
            ctx.close()
        settle(
            lambda: s.statuses(connector_id)["sent"] == PER_DAY + PENDING,
            "every pending send sent after the refill",
            timeout=120,
            state=lambda: s.statuses(connector_id),
        )
        deliveries = s.deliveries(spend + pending)

    assert released == PENDING
    assert deliveries == Counter({address: 1 for address in spend + pending})
    figures(
        f"scenario 9 day budget: {PER_DAY}/day spent, {PENDING} pending all parked in PostgreSQL "
        f"(0 on the broker, next attempt in {(soonest - parked_at).total_seconds() / 3600:.1f}-"
        f"{(latest - parked_at).total_seconds() / 3600:.1f} h), {released} released after the refill "
        f"(injected clock), {sum(deliveries.values())} delivered, "
        f"{sum(n - 1 for n in deliveries.values())} duplicates; {time.monotonic() - started:.0f} s"
    )
