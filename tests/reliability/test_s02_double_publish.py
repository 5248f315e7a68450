"""Scenario 2: every send task is published twice (same task id) → each email delivered once."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable

import pytest

from tests.reliability.harness import recipients, settle, size, stack
from tests.reliability.servers import RedisServer
from tests.sandbox_process import running_sandbox
from tests.worker_process import running_worker

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(size(180, 900))]

TASKS = size(100, 1000)


def test_every_send_task_published_twice_is_delivered_once(
    fresh_database_url: str, redis_server: RedisServer, figures: Callable[[str], None]
) -> None:
    started = time.monotonic()
    with (
        running_sandbox(rate_limit_per_second=0) as sandbox,
        stack(fresh_database_url, redis_server, sandbox) as s,
        running_worker(s.env, concurrency=2, pool="prefork"),
    ):
        connector_id = s.connector()
        to = recipients("twice", TASKS)
        for address in to:
            task_id = str(uuid.uuid4())
            s.publish(connector_id, address, task_id=task_id)
            s.publish(connector_id, address, task_id=task_id)
        settle(
            lambda: s.statuses(connector_id)["sent"] == TASKS and s.broker_backlog() == 0,
            "both copies of every task processed",
            timeout=size(120, 600),
            state=lambda: (s.statuses(connector_id), s.broker_backlog()),
        )
        statuses = s.statuses(connector_id)
        deliveries = s.deliveries(to)
        replays = sandbox.stats()["counts"].get("idempotent_replays", 0)

    assert statuses == Counter({"sent": TASKS})
    assert deliveries == Counter({address: 1 for address in to})
    figures(
        f"scenario 2 double publish: {TASKS} tasks published twice, {sum(deliveries.values())} delivered, "
        f"{sum(n - 1 for n in deliveries.values())} duplicates, {sum(statuses.values())} ledger rows, "
        f"{replays} idempotent replays at the sandbox; {time.monotonic() - started:.0f} s"
    )
