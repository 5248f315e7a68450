"""Buckets Redis lost are rebuilt from recorded usage, never granted afresh.

Without a usage source a missing bucket is a full one (the limiter's original contract, tested in
``test_rate_limit.py``). With one — the worker reads the PostgreSQL ledger — a missing connector
bucket is unknown: the limiter asks the source once, writes both buckets, and decides on them.
Each test runs on fakeredis (with Lua) and on the real Redis on loopback.
"""

from __future__ import annotations

import pytest
import redis

from shared.errors import RateLimitBackendUnavailable
from shared.rate_limit import REBUILT_BUCKET_KEEP_MS, ConnectorLimits, RateLimiter, rebuilt_state

CONNECTOR = "0f3c2b1a-6d5e-4f48-9a7b-1c2d3e4f5a6b"
LIMITS = ConnectorLimits(per_hour=40, per_day=1000)
NOW_MS = 1_700_000_000_000


class Source:
    """A usage source answering fixed figures and counting the questions."""

    def __init__(self, hour: int, day: int) -> None:
        self.usage = (hour, day)
        self.calls = 0

    def __call__(self, connector_id: str) -> tuple[int, int]:
        assert connector_id == CONNECTOR
        self.calls += 1
        return self.usage


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    return redis_prefix


def limiter(lua_redis: redis.Redis, prefix: str, source: Source | None) -> RateLimiter:
    return RateLimiter(lua_redis, key_prefix=prefix, clock_ms=lambda: NOW_MS, usage_source=source)


def take_all(limiter: RateLimiter) -> int:
    """Take one email at a time until denied; how many were granted."""
    granted = 0
    while limiter.acquire_emails(CONNECTOR, 1, LIMITS).granted:
        granted += 1
    return granted


def lose_everything(lua_redis: redis.Redis, prefix: str) -> None:
    keys = list(lua_redis.scan_iter(match=f"{prefix}*"))
    if keys:
        lua_redis.delete(*keys)


def test_rebuild_first_use_grants_only_what_the_recorded_usage_leaves(
    lua_redis: redis.Redis, prefix: str
) -> None:
    source = Source(hour=30, day=30)
    assert take_all(limiter(lua_redis, prefix, source)) == 10
    assert source.calls == 1


def test_rebuild_after_redis_lost_the_buckets_keeps_the_hour_limit(
    lua_redis: redis.Redis, prefix: str
) -> None:
    source = Source(hour=0, day=0)
    first = limiter(lua_redis, prefix, source)
    for _ in range(20):
        assert first.acquire_emails(CONNECTOR, 1, LIMITS).granted
    lose_everything(lua_redis, prefix)
    source.usage = (20, 20)  # what the ledger recorded meanwhile
    assert take_all(first) == 20
    assert source.calls == 2


def test_rebuild_asks_the_source_once_per_loss_not_per_take(lua_redis: redis.Redis, prefix: str) -> None:
    source = Source(hour=0, day=0)
    bucket = limiter(lua_redis, prefix, source)
    for _ in range(5):
        bucket.acquire_emails(CONNECTOR, 1, LIMITS)
        bucket.can_execute(CONNECTOR, LIMITS)
        bucket.get_usage_stats(CONNECTOR, "hour", LIMITS)
    assert source.calls == 1


def test_rebuild_day_usage_blocks_by_day(lua_redis: redis.Redis, prefix: str) -> None:
    decision = limiter(lua_redis, prefix, Source(hour=0, day=1000)).acquire_emails(CONNECTOR, 1, LIMITS)
    assert not decision.granted and decision.blocked_by == "day"


def test_rebuild_usage_above_a_lowered_limit_leaves_an_empty_bucket(
    lua_redis: redis.Redis, prefix: str
) -> None:
    stats = limiter(lua_redis, prefix, Source(hour=500, day=500)).get_usage_stats(CONNECTOR, "hour", LIMITS)
    assert (stats.used, stats.remaining) == (40, 0)


def test_rebuild_keeps_a_bucket_another_worker_rebuilt_first(lua_redis: redis.Redis, prefix: str) -> None:
    other = limiter(lua_redis, prefix, Source(hour=0, day=0))

    class Racing(Source):
        def __call__(self, connector_id: str) -> tuple[int, int]:
            # While this worker reads the ledger, the other one rebuilds and takes 5.
            assert other.acquire_emails(CONNECTOR, 5, LIMITS).granted
            return super().__call__(connector_id)

    late = limiter(lua_redis, prefix, Racing(hour=0, day=0))
    assert late.get_usage_stats(CONNECTOR, "hour", LIMITS).used == 5


def test_rebuild_buckets_are_kept_a_day_even_when_full(lua_redis: redis.Redis, prefix: str) -> None:
    limiter(lua_redis, prefix, Source(hour=0, day=0)).acquire_emails(CONNECTOR, 1, LIMITS)
    ttls = [lua_redis.pttl(key) for key in lua_redis.scan_iter(match=f"{prefix}bucket:*")]
    assert len(ttls) == 1 and all(ttl > REBUILT_BUCKET_KEEP_MS - 60_000 for ttl in ttls)


def test_rebuild_failing_source_grants_nothing(lua_redis: redis.Redis, prefix: str) -> None:
    def broken(_: str) -> tuple[int, int]:
        raise RateLimitBackendUnavailable("ledger unreachable")

    with pytest.raises(RateLimitBackendUnavailable):
        limiter(lua_redis, prefix, broken).acquire_emails(CONNECTOR, 1, LIMITS)  # type: ignore[arg-type]
    assert not list(lua_redis.scan_iter(match=f"{prefix}*"))


def test_without_a_source_a_missing_bucket_is_full(lua_redis: redis.Redis, prefix: str) -> None:
    assert take_all(limiter(lua_redis, prefix, None)) == 40


@pytest.mark.parametrize(
    ("used", "state"),
    [
        ((0, 0), "7 0 3600000 0 86400000"),
        ((3, 5), "7 10800000 3600000 432000000 86400000"),
        ((99, 999), "7 144000000 3600000 34560000000 86400000"),
        ((-1, -1), "7 0 3600000 0 86400000"),
    ],
)
def test_rebuilt_state_counts_usage_as_spent_now(used: tuple[int, int], state: str) -> None:
    assert rebuilt_state(used, ConnectorLimits(per_hour=40, per_day=400), 7) == state
