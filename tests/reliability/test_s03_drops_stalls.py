"""Scenario 3: the sandbox drops the connection after accepting 10% of sends and stalls 5%.

A dropped send was accepted but the worker never heard: its retry (same idempotency key, same
body) is answered with the original id. A stalled send hangs past the client's read timeout: the
retry meets ``409 concurrent_idempotent_requests`` until the stall ends, then the stored answer.
The worker runs a threads pool so that stalls hold threads, not the whole worker.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.reliability.harness import recipients, settle, size, stack
from tests.reliability.servers import RedisServer
from tests.sandbox_process import running_sandbox
from tests.worker_process import running_worker

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(size(180, 900))]

SENDS = size(100, 1000)
DROP_RATE = 0.10
STALL_RATE = 0.05
STALL_S = size(3.0, 30.0)
THREADS = 32


def test_dropped_and_stalled_sends_are_each_delivered_once(
    fresh_database_url: str, redis_server: RedisServer, figures: Callable[[str], None]
) -> None:
    started = time.monotonic()
    with (
        running_sandbox(
            rate_limit_per_second=0,
            drop_rate=DROP_RATE,
            stall_rate=STALL_RATE,
            stall_seconds=STALL_S,
            threads=2 * THREADS,
            seed=3,
        ) as sandbox,
        stack(fresh_database_url, redis_server, sandbox) as s,
        running_worker(s.env, concurrency=THREADS, pool="threads") as worker,
    ):
        connector_id = s.connector()
        to = recipients("faulty", SENDS)
        for address in to:
            s.publish(connector_id, address)
        settle(
            lambda: s.statuses(connector_id)["sent"] == SENDS,
            "every email sent",
            timeout=size(120, 600),
            state=lambda: (s.statuses(connector_id), s.broker_backlog(), worker.log()[-4000:]),
        )
        statuses = s.statuses(connector_id)
        deliveries = s.deliveries(to)
        counts = sandbox.stats()["counts"]

    assert statuses == Counter({"sent": SENDS})
    assert deliveries == Counter({address: 1 for address in to})
    figures(
        f"scenario 3 drops+stalls: {SENDS} sends, {sum(deliveries.values())} delivered, "
        f"{sum(n - 1 for n in deliveries.values())} duplicates, "
        f"{counts.get('dropped_connections', 0)} dropped, "
        f"{counts.get('stalled', 0)} stalled {STALL_S:.0f} s, {counts.get('idempotent_replays', 0)} replays; "
        f"{time.monotonic() - started:.1f} s"
    )
