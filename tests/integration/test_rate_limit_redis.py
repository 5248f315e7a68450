"""Exact budgets under concurrency: processes racing one connector on the real Redis.

Each race runs twice: on a frozen injected clock (no refill at all, so the counts are exact whatever
the machine's speed) and on Redis ``TIME`` as in production. On Redis time the bucket refills
``per_hour/3600`` tokens a second while the race runs; the allowance below is that refill, measured
with Redis ``TIME`` around the race, and it is 0 unless the race takes longer than 3.6 s.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

import pytest
import redis

from shared.rate_limit import DAY_MS, HOUR_MS, ConnectorLimits, RateLimiter, dedicated_client
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
    """One racing process: a limiter of its own, ``attempts`` takes of one token, its grants reported."""
    clock = (lambda: FROZEN_MS) if frozen else None
    limiter = RateLimiter(dedicated_client(REDIS_URL), key_prefix=prefix, clock_ms=clock)
    take_at_the_barrier(limiter, limits, attempts, barrier, results)


def take_at_the_barrier(
    limiter: RateLimiter,
    limits: ConnectorLimits,
    attempts: int,
    barrier: Barrier,
    results: Queue[int],
    keep_reserve: bool = False,
) -> None:
    barrier.wait()
    results.put(
        sum(
            limiter.acquire_emails(CONNECTOR, 1, limits, keep_reserve=keep_reserve).granted
            for _ in range(attempts)
        )
    )


def take_bulk_or_transactional(
    prefix: str, limits: ConnectorLimits, attempts: int, bulk: bool, barrier: Barrier, results: Queue[int]
) -> None:
    """One racing process taking for bulk mail (keeping the reserve) or transactional mail."""
    limiter = RateLimiter(dedicated_client(REDIS_URL), key_prefix=prefix, clock_ms=lambda: FROZEN_MS)
    barrier.wait()
    granted = sum(
        limiter.acquire_emails(CONNECTOR, 1, limits, keep_reserve=bulk).granted for _ in range(attempts)
    )
    results.put(granted if bulk else -granted)


def redis_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def racers(target: Callable[..., None], args: Callable[[int], tuple[Any, ...]]) -> list[int]:
    """What ``PROCESSES`` processes running ``target(*args(index), barrier, results)``, started
    together at a barrier, each put on the results queue."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=target, args=(*args(index), barrier, results)) for index in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    reported = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    return reported


def race(client: redis.Redis, prefix: str, limits: ConnectorLimits, total: int, frozen: bool) -> Race:
    """``total`` attempts split over ``PROCESSES`` processes started together."""
    started = redis_ms(client)
    granted = sum(racers(take_one_at_a_time, lambda _: (prefix, limits, total // PROCESSES, frozen)))
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


def test_a_limiter_connected_before_a_fork_is_safe_to_use_in_the_parent_and_every_child(
    redis_prefix: str,
) -> None:
    """A child that used its parent's socket would read replies meant for another process."""
    limits = ConnectorLimits(per_hour=1000, per_day=100_000)
    limiter = RateLimiter(dedicated_client(REDIS_URL), key_prefix=redis_prefix, clock_ms=lambda: FROZEN_MS)
    assert limiter.acquire_emails(CONNECTOR, 1, limits).granted  # the parent's connection is open
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PROCESSES + 1)
    results = context.Queue()
    children = [
        context.Process(target=take_at_the_barrier, args=(limiter, limits, 500, barrier, results))
        for _ in range(PROCESSES)
    ]
    for child in children:
        child.start()

    take_at_the_barrier(limiter, limits, 500, barrier, results)
    granted = 1 + sum(results.get(timeout=120) for _ in range(PROCESSES + 1))

    for child in children:
        child.join(timeout=30)
        assert child.exitcode == 0
    assert granted == 1000
    assert limiter.get_usage_stats(CONNECTOR, "hour", limits).remaining == 0


def test_threads_sharing_one_limiter_and_its_one_connection_are_granted_exactly_the_budget(
    redis_prefix: str,
) -> None:
    limits = ConnectorLimits(per_hour=1000, per_day=100_000)
    limiter = RateLimiter(dedicated_client(REDIS_URL), key_prefix=redis_prefix, clock_ms=lambda: FROZEN_MS)
    barrier = threading.Barrier(PROCESSES)
    granted: list[int] = []

    def take() -> None:
        barrier.wait()
        granted.append(sum(limiter.acquire_emails(CONNECTOR, 1, limits).granted for _ in range(500)))

    threads = [threading.Thread(target=take) for _ in range(PROCESSES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(granted) == PROCESSES
    assert sum(granted) == 1000


def test_racing_bulk_and_transactional_takes_never_exceed_the_budget_nor_eat_the_reserve_with_bulk(
    redis_prefix: str,
) -> None:
    limits = ConnectorLimits(per_hour=100, per_day=10_000, reserve_per_hour=20)
    grants = racers(take_bulk_or_transactional, lambda index: (redis_prefix, limits, 200, index % 2 == 0))
    bulk = sum(granted for granted in grants if granted > 0)
    transactional = -sum(granted for granted in grants if granted < 0)

    assert bulk + transactional == 100, grants
    assert bulk <= 80, grants
