"""Scenario 12: SIGKILL the worker while a large schedule is being released.

Thousands of recipients are scheduled for one instant (rows ``scheduled`` in PostgreSQL, written
before it). At that instant beat releases them (``release_scheduled``, up to 5,000 a round) and the
worker sends them 100 to a request at the API key's rate. While the release is under way (some rows
sent, some in flight, others still waiting), the whole worker is killed with SIGKILL; a replacement
is started, and beat's sweep and reconcile (compressed thresholds) hand it what the dead one held.
Then every scheduled row is sent exactly once: the sandbox accepted each recipient once, under the
idempotency key of its row's unit, and nothing is lost.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from shared.models import EmailMessage
from shared.sending import pipeline
from tests.reliability.harness import (
    Stack,
    recipients,
    running_beat,
    send_context,
    settle,
    size,
    stack,
    utc_now,
)
from tests.reliability.servers import RedisServer
from tests.sandbox_process import running_sandbox
from tests.send_helpers import email
from tests.worker_process import running_worker

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(size(300, 1800))]

SCHEDULED = size(2_000, 20_000)
#: Whole-worker kills during the release, each followed by a replacement worker.
KILLS = size(1, 3)
#: How far ahead the schedule is set: every row is written before it comes.
AHEAD_S = size(10.0, 90.0)
#: The API key's request rate: the release takes several seconds (100 emails a request).
REQUESTS_PER_SECOND = 4.0
#: Each request spends most of its time at the sandbox, so a kill lands while a unit is in flight.
LATENCY_S = 0.3
RECONCILE_AFTER_S = 5.0
SWEEP_AFTER_S = 10.0
#: ``pilot.send_batch`` emails per call when writing the schedule.
WRITE_BATCH = 1000


def schedule(s: Stack, to: list[str], at: str) -> uuid.UUID:
    """Write the schedule (one ``pilot.send_batch`` per 1,000 recipients) in this process, for a new
    connector; its id."""
    ctx = send_context(s, lambda name, kwargs, countdown: s.app.send_task(name, kwargs=kwargs))
    try:
        connector_id = s.connector()
        for start in range(0, len(to), WRITE_BATCH):
            kwargs: dict[str, Any] = {
                "connector_id": str(connector_id),
                "emails": [email(address, scheduled_at=at) for address in to[start : start + WRITE_BATCH]],
            }
            pipeline.send_batch(ctx, kwargs, task_ref=f"schedule-{start}")
        return connector_id
    finally:
        ctx.close()


def under_way(s: Stack, connector_id: uuid.UUID, *, sent_above: int) -> Callable[[], bool]:
    """Whether the release is under way: more than ``sent_above`` rows sent, some in flight (and, as
    the kills leave room for, some still waiting)."""

    def check() -> bool:
        now = s.statuses(connector_id)
        return now["sent"] > sent_above and now["sending"] > 0

    return check


def test_kills_during_a_scheduled_release_lose_and_duplicate_nothing(
    fresh_database_url: str, redis_server: RedisServer, figures: Callable[[str], None]
) -> None:
    started = time.monotonic()
    rate = {"RESEND_REQUESTS_PER_SECOND": str(REQUESTS_PER_SECOND)}
    killed_mid_release: list[Counter[str]] = []
    with (
        running_sandbox(rate_limit_per_second=0, latency=LATENCY_S) as sandbox,
        stack(fresh_database_url, redis_server, sandbox, **rate) as s,
    ):
        to = recipients("scheduled", SCHEDULED)
        due = utc_now() + timedelta(seconds=AHEAD_S)
        connector_id = schedule(s, to, due.isoformat())
        written = s.statuses(connector_id)
        assert written == Counter({"scheduled": SCHEDULED}) and utc_now() < due, "the schedule came too early"

        with running_beat(s, sweep_after=SWEEP_AFTER_S, reconcile_after=RECONCILE_AFTER_S) as beat:
            for kill in range(KILLS + 1):
                with running_worker(s.env, concurrency=2, pool="prefork") as worker:
                    if kill == KILLS:
                        settle(
                            lambda: s.statuses(connector_id)["sent"] == SCHEDULED,
                            "every scheduled row sent",
                            timeout=size(240, 1500),
                            state=lambda: (s.statuses(connector_id), s.broker_backlog()),
                        )
                        break
                    share = SCHEDULED * (kill + 1) // (KILLS + 2)
                    settle(
                        under_way(s, connector_id, sent_above=max(share, s.statuses(connector_id)["sent"])),
                        "the release under way",
                        timeout=size(120, 600),
                        every=0.02,
                        state=lambda: (s.statuses(connector_id), worker.log()[-3000:]),
                    )
                    os.killpg(worker.pid, signal.SIGKILL)
                    killed_mid_release.append(s.statuses(connector_id))
            statuses = s.statuses(connector_id)
            released, reconciled = beat.published["scheduled"], beat.published["reconciled"]
        emails = sandbox.emails()
        with s.factory() as session:
            ledger = session.execute(
                select(EmailMessage.resend_email_id, EmailMessage.attempt_key, EmailMessage.sent_at).where(
                    EmailMessage.connector_id == connector_id
                )
            ).all()

    deliveries = Counter(address for item in emails for address in item["to"])
    lost = [address for address in to if deliveries[address] == 0]
    duplicated = {address: n for address, n in deliveries.items() if n > 1}
    accepted_under = {item["id"]: item["idempotency_key"] for item in emails}
    other_key = [email_id for email_id, unit, _ in ledger if accepted_under.get(email_id) != unit]
    early = [sent_at for _, _, sent_at in ledger if sent_at is None or sent_at < due]
    assert statuses == Counter({"sent": SCHEDULED})
    assert not lost and not duplicated and not other_key and not early
    at_kills = "; ".join(", ".join(f"{k} {n}" for k, n in sorted(c.items())) for c in killed_mid_release)
    figures(
        f"scenario 12 kills during a scheduled release: {SCHEDULED} rows due at one instant, "
        f"{REQUESTS_PER_SECOND:.0f} requests/s, {KILLS} whole-worker kills (ledger at each: {at_kills}); "
        f"{released} released, {reconciled} reconciled (sweep after {SWEEP_AFTER_S:.0f} s, "
        f"reconcile after {RECONCILE_AFTER_S:.0f} s instead of 30 s and 2 min); "
        f"{sum(deliveries.values())} delivered, {len(lost)} lost, {len(duplicated)} duplicates, "
        f"{len(other_key)} accepted under another key; {time.monotonic() - started:.0f} s"
    )
