"""Scenario 4: Redis restarted empty when half of a connector's hourly budget is spent.

Redis holds the broker queues and the token buckets and has no persistence: the restart loses the
queued send tasks and the record of what the hour has used. Then nothing may go over the hourly
limit (the buckets are rebuilt from the PostgreSQL ledger), bulk mail still stops at the transactional
reserve (which transactional sends then get), every send Redis lost is published again from
PostgreSQL (the sweep; sends go through the outbox), and the worker, which runs through the restart,
consumes again within 30 s.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.reliability.harness import recipients, running_beat, settle, size, stack
from tests.reliability.servers import RedisServer
from tests.sandbox_process import running_sandbox
from tests.worker_process import running_worker

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(size(180, 600))]

PER_HOUR = size(40, 200)
RESERVE = PER_HOUR // 4
#: Each send takes this long at the sandbox, so most of the second wave is still queued at the restart.
LATENCY_S = 0.25
SWEEP_AFTER_S = 5.0


def test_redis_restarted_empty_at_half_the_hourly_budget_keeps_the_limit_and_loses_nothing(
    fresh_database_url: str, redis_server: RedisServer, figures: Callable[[str], None]
) -> None:
    started = time.monotonic()
    with (
        running_sandbox(rate_limit_per_second=0, latency=LATENCY_S) as sandbox,
        stack(fresh_database_url, redis_server, sandbox) as s,
        running_worker(s.env, concurrency=2, pool="prefork") as worker,
        running_beat(s, sweep_after=SWEEP_AFTER_S) as beat,
    ):
        connector_id = s.connector(per_hour=PER_HOUR, reserve_per_hour=RESERVE)
        first = recipients("before", PER_HOUR // 2)
        s.outbox(connector_id, first, priority="bulk")
        settle(lambda: s.statuses(connector_id)["sent"] == len(first), "half the budget sent", timeout=120)
        first_send = min(email["created_at"] for email in sandbox.emails())

        # A second wave of a whole hour's budget, then Redis loses everything
        second = recipients("after", PER_HOUR)
        s.outbox(connector_id, second, priority="bulk")
        redis_server.restart()
        restarted_at = time.time()
        accepted_before_restart = len(sandbox.emails())

        def settled() -> bool:
            statuses = s.statuses(connector_id)
            return statuses["queued"] == 0 and statuses["sending"] == 0

        settle(settled, "every row sent or deferred", timeout=120, state=lambda: s.statuses(connector_id))
        time.sleep(SWEEP_AFTER_S)  # anything still to come (a late release) would show now
        bulk_sent = s.statuses(connector_id)["sent"]
        # The reserve is still there: transactional sends get it, at once.
        transactional = recipients("reset", RESERVE)
        s.outbox(connector_id, transactional)
        settle(
            lambda: s.statuses(connector_id)["sent"] == bulk_sent + RESERVE,
            "the transactional sends sent from the reserve",
            timeout=60,
            state=lambda: s.statuses(connector_id),
        )
        statuses = s.statuses(connector_id)
        emails = sandbox.emails()
        after_restart = sorted(e["created_at"] for e in emails if e["created_at"] > restarted_at)
        log = worker.log()

    elapsed_h = (time.time() - first_send) / 3600
    allowed = PER_HOUR + int(PER_HOUR * elapsed_h)  # the continuous refill over the test's duration
    deliveries = Counter(to for email in emails for to in email["to"])
    timeline = [(round(e["created_at"] - restarted_at, 2), e["to"][0][:12]) for e in emails]
    assert len(emails) <= allowed, (
        f"{len(emails)} sends in the hour, limit {allowed}: {timeline}\n{log[-4000:]}"
    )
    assert bulk_sent <= allowed - RESERVE, f"bulk mail ate into the reserve: {bulk_sent} sent"
    assert all(deliveries[address] == 1 for address in transactional)
    assert all(deliveries[address] == 1 for address in first)
    assert all(deliveries[address] <= 1 for address in second)
    assert statuses["sent"] == len(emails) and set(statuses) <= {"sent", "deferred"}, statuses
    assert sum(statuses.values()) == len(first) + len(second) + len(transactional)  # nothing lost
    assert after_restart, f"nothing sent after the restart:\n{log[-3000:]}"
    consuming_after = after_restart[0] - restarted_at
    assert consuming_after < 30
    figures(
        f"scenario 4 redis restart: budget {PER_HOUR}/h, {len(first)} sent before the restart "
        f"({accepted_before_restart - len(first)} more in flight), {len(second)} queued then lost by Redis, "
        f"{bulk_sent} bulk sent (at most {allowed - RESERVE} above the reserve of {RESERVE}), then "
        f"{len(transactional)} transactional from the reserve; "
        f"{len(emails)} sent in the hour (limit {allowed}), {statuses['deferred']} deferred, 0 lost "
        f"({beat.published['swept']} rows re-enqueued by the sweep), consuming again after "
        f"{consuming_after:.1f} s; {time.monotonic() - started:.0f} s"
    )
