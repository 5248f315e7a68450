"""Exact budgets under concurrency: processes racing one connector on the real Redis.

Each race runs twice: on a frozen injected clock (no refill at all, so the counts are exact whatever
the machine's speed) and on Redis ``TIME`` as in production. On Redis time the bucket refills
``per_hour/3600`` tokens a second while the race runs; the allowance below is that refill, measured
with Redis ``TIME`` around the race, and it is 0 unless the race takes longer than 3.6 s.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import pytest
import redis

from shared.rate_limit import DAY_MS, HOUR_MS, ConnectorLimits, RateLimiter
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.integration

CONNECTOR = "race-connector"
PROCESSES = 8
FROZEN_MS = 1_700_000_000_000


@dataclass(frozen=True)
class Race:
    granted: int
    #: Tokens the buckets may have refilled while the race ran (0 on the frozen clock).
    hour_allowance: int
    day_allowance: int


def take_one_at_a_time(
    prefix: str, limits: ConnectorLimits, attempts: int, frozen: bool, barrier: Barrier, results: Queue[int]
) -> None:
    """One racing process: its own client, ``attempts`` takes of one token, its grants reported."""
    client = redis.Redis.from_url(REDIS_URL)
    limiter = RateLimiter(client, key_prefix=prefix, clock_ms=(lambda: FROZEN_MS) if frozen else None)
    barrier.wait()
    granted = sum(limiter.acquire_emails(CONNECTOR, 1, limits).granted for _ in range(attempts))
    results.put(granted)
    client.close()


def redis_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def race(client: redis.Redis, prefix: str, limits: ConnectorLimits, total: int, frozen: bool) -> Race:
    """``total`` attempts split over ``PROCESSES`` processes started together."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(
            target=take_one_at_a_time,
            args=(prefix, limits, total // PROCESSES, frozen, barrier, results),
        )
        for _ in range(PROCESSES)
    ]
    started = redis_ms(client)
    for process in processes:
        process.start()
    granted = sum(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    elapsed = 0 if frozen else redis_ms(client) - started
    return Race(
        granted=granted,
        hour_allowance=elapsed * limits.per_hour // HOUR_MS,
        day_allowance=elapsed * limits.per_day // DAY_MS,
    )


def limiter_for(client: redis.Redis, prefix: str, frozen: bool) -> RateLimiter:
    return RateLimiter(client, key_prefix=prefix, clock_ms=(lambda: FROZEN_MS) if frozen else None)


@pytest.mark.parametrize("frozen", [True, False], ids=["frozen-clock", "redis-time"])
def test_racing_processes_are_granted_exactly_the_hour_budget(
    real_redis: redis.Redis, redis_prefix: str, frozen: bool
) -> None:
    limits = ConnectorLimits(per_hour=1000, per_day=100_000)

    result = race(real_redis, redis_prefix, limits, total=4000, frozen=frozen)

    assert 0 <= result.granted - 1000 <= result.hour_allowance, result


@pytest.mark.parametrize("frozen", [True, False], ids=["frozen-clock", "redis-time"])
def test_racing_processes_are_granted_exactly_the_day_budget_and_no_hour_tokens_more(
    real_redis: redis.Redis, redis_prefix: str, frozen: bool
) -> None:
    limits = ConnectorLimits(per_hour=1000, per_day=300)

    result = race(real_redis, redis_prefix, limits, total=800, frozen=frozen)
    hour = limiter_for(real_redis, redis_prefix, frozen).get_usage_stats(CONNECTOR, "hour", limits)

    assert 0 <= result.granted - 300 <= result.day_allowance, result
    # Denials by the day bucket took nothing from the hour bucket.
    assert 0 <= hour.remaining - (1000 - result.granted) <= result.hour_allowance, (result, hour)
