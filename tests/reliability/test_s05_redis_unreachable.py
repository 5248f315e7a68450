"""Scenario 5: Redis (broker and buckets) unreachable for a while, then back with its data.

Redis is paused (SIGSTOP): connections stay open and nothing answers, as in a network partition.
The worker must send nothing meanwhile (the buckets cannot be asked: fail closed, rows wait in
PostgreSQL), lose nothing, and send again soon after Redis answers.
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

SENDS = size(150, 600)
OUTAGE_S = size(4.0, 30.0)
LATENCY_S = 0.1
#: A request already on its way when Redis stopped may land this long after (latency + margin).
IN_FLIGHT_GRACE_S = 0.5


def test_redis_unreachable_sends_nothing_meanwhile_and_loses_nothing(
    fresh_database_url: str, redis_server: RedisServer, figures: Callable[[str], None]
) -> None:
    started = time.monotonic()
    with (
        running_sandbox(rate_limit_per_second=0, latency=LATENCY_S) as sandbox,
        stack(fresh_database_url, redis_server, sandbox) as s,
        running_worker(s.env, concurrency=2, pool="prefork"),
        running_beat(s, sweep_after=30),
    ):
        connector_id = s.connector()
        to = recipients("outage", SENDS)
        s.outbox(connector_id, to)
        settle(lambda: s.statuses(connector_id)["sent"] >= 10, "sending under way", timeout=60)
        redis_server.pause()
        paused_at = time.time()
        try:
            time.sleep(OUTAGE_S)
        finally:
            redis_server.resume()
        resumed_at = time.time()
        settle(
            lambda: s.statuses(connector_id)["sent"] == SENDS,
            "every email sent",
            timeout=size(120, 300),
            state=lambda: s.statuses(connector_id),
        )
        emails = sandbox.emails()

    accepted = sorted(email["created_at"] for email in emails)
    during = [t for t in accepted if paused_at + IN_FLIGHT_GRACE_S <= t < resumed_at]
    after = [t for t in accepted if t >= resumed_at]
    deliveries = Counter(to for email in emails for to in email["to"])
    assert not during, f"{len(during)} sends while Redis was unreachable"
    assert deliveries == Counter({address: 1 for address in to})
    assert after and after[0] - resumed_at < 30
    figures(
        f"scenario 5 redis unreachable: {SENDS} sends, {len(emails)} delivered, 0 lost, "
        f"{sum(n - 1 for n in deliveries.values())} duplicates, Redis paused {OUTAGE_S:.0f} s, "
        f"{len(during)} sends during the outage, first send {after[0] - resumed_at:.1f} s after it, "
        f"last {accepted[-1] - resumed_at:.1f} s after it; {time.monotonic() - started:.0f} s"
    )
