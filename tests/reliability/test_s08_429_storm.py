"""Scenario 8: a 429 storm. The sandbox allows 2 requests a second; 4 pool children send as fast as
they may, not knowing the limit (their configured rate is 1000/s). After the first 429 they must
follow Resend's answer (the shared cooldown and the learnt ``ratelimit-limit``): at most 2
requests in any wall-clock second at the sandbox, and every email delivered once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.reliability.harness import recipients, settle, size, stack
from tests.reliability.servers import RedisServer
from tests.sandbox_process import SandboxHandle, running_sandbox
from tests.worker_process import running_worker

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(size(180, 600))]

LIMIT_PER_S = 2
SENDS = size(12, 120)
WORKERS = 4


class First429:
    """Watches the sandbox's counters and notes when the first 429 was given."""

    def __init__(self, sandbox: SandboxHandle) -> None:
        self.sandbox = sandbox
        self.at: float | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while self.at is None and not self.stop.wait(0.05):
            if self.sandbox.stats()["counts"].get("rate_limited"):
                self.at = time.time()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def test_429_storm_keeps_to_the_sandbox_rate_and_delivers_everything(
    fresh_database_url: str, redis_server: RedisServer, figures: Callable[[str], None]
) -> None:
    started = time.monotonic()
    with (
        running_sandbox(rate_limit_per_second=LIMIT_PER_S) as sandbox,
        stack(fresh_database_url, redis_server, sandbox) as s,
        running_worker(s.env, concurrency=WORKERS, pool="prefork"),
    ):
        watcher = First429(sandbox)
        try:
            connector_id = s.connector()
            to = recipients("storm", SENDS)
            for address in to:
                s.publish(connector_id, address)
            settle(
                lambda: s.statuses(connector_id)["sent"] == SENDS,
                "every email sent",
                timeout=size(120, 400),
                state=lambda: s.statuses(connector_id),
            )
        finally:
            watcher.close()
        stats = sandbox.stats()
        deliveries = s.deliveries(to)

    assert watcher.at is not None, "the scenario needs a 429"
    histogram = {int(second): n for second, n in stats["requests_per_second"].items()}
    after = {second: n for second, n in histogram.items() if second > int(watcher.at)}
    busiest = max(after.values(), default=0)
    assert deliveries == Counter({address: 1 for address in to})
    assert busiest <= LIMIT_PER_S, (
        f"{busiest} requests in one second after the first 429: {sorted(after.items())}"
    )
    figures(
        f"scenario 8 429 storm: {SENDS} sends by {WORKERS} pool children at a {LIMIT_PER_S}/s sandbox, "
        f"{sum(deliveries.values())} delivered, {stats['counts'].get('rate_limited', 0)} 429s, "
        f"{stats['counts']['requests']} requests, at most {busiest} requests in a second after the first 429 "
        f"(over {len(after)} s); {time.monotonic() - started:.0f} s"
    )
