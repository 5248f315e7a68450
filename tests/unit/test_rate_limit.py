"""Token buckets: refill arithmetic on an injected clock, atomic takes, clamping, expiry, cooldowns.

Tests taking the ``lua_redis`` fixture run twice: on fakeredis (with Lua) and on the real Redis on
loopback, which fails (never skips) when it is down.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import fakeredis
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import PayloadInvalid, RateLimitBackendUnavailable, RequestExceedsCapacity
from shared.rate_limit import (
    DAY_MS,
    HOUR_MS,
    MAX_LIMIT,
    ConnectorLimits,
    Decision,
    RateLimiter,
    UsageStats,
    api_key_hash,
    connector_bucket_key,
    request_bucket_shape,
    usage_from_deficit,
)
from shared.settings import load_settings
from tests.conftest import REDIS_URL

CONNECTOR = "5b0e6c1e-8d5f-4a4e-9a51-0c4f3f6b9d11"
API_KEY = "re_test_0123456789abcdefghijklmnop"
#: 3600/hour and 86400/day both refill exactly one token per second.
ONE_PER_SECOND = ConnectorLimits(per_hour=3600, per_day=86400)


class FakeClock:
    """Milliseconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now_ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, seconds: float) -> None:
        self.now_ms += round(seconds * 1000)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(lua_redis: redis.Redis, redis_prefix: str, clock: FakeClock) -> RateLimiter:
    return RateLimiter(lua_redis, key_prefix=redis_prefix, clock_ms=clock)


def denied(wait_seconds: float, blocked_by: str) -> Decision:
    return Decision(granted=False, wait_seconds=wait_seconds, blocked_by=blocked_by)


GRANTED = Decision(granted=True, wait_seconds=0.0, blocked_by=None)


# Taking and refilling -------------------------------------------------------------------------------


def test_acquire_emails_grants_up_to_the_hour_capacity(limiter: RateLimiter) -> None:
    limits = ConnectorLimits(per_hour=10, per_day=100)

    assert limiter.acquire_emails(CONNECTOR, 10, limits) == GRANTED
    assert limiter.acquire_emails(CONNECTOR, 1, limits).granted is False


@pytest.mark.parametrize(
    ("taken", "advance_s", "remaining"),
    [
        (3600, 0.999, 0),  # a token is not there until its whole second has passed
        (3600, 1.0, 1),
        (3600, 2.5, 2),
        (10, 2.5, 3592),  # 3590 left + 2.5 refilled, whole tokens only
        (3600, 3600.0, 3600),  # a full period refills the bucket completely
        (3600, 10 * 3600.0, 3600),  # and never beyond capacity
    ],
)
def test_hour_bucket_refills_per_hour_over_3600_tokens_a_second(
    limiter: RateLimiter, clock: FakeClock, taken: int, advance_s: float, remaining: int
) -> None:
    limiter.acquire_emails(CONNECTOR, taken, ONE_PER_SECOND)
    clock.advance(advance_s)

    assert limiter.get_usage_stats(CONNECTOR, "hour", ONE_PER_SECOND).remaining == remaining


def test_day_bucket_refills_per_day_over_86400_tokens_a_second(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    limits = ConnectorLimits(per_hour=1000, per_day=300)  # one day token every 288 s
    limiter.acquire_emails(CONNECTOR, 300, limits)
    clock.advance(287.999)
    assert limiter.acquire_emails(CONNECTOR, 1, limits) == denied(0.001, "day")

    clock.advance(0.001)
    assert limiter.acquire_emails(CONNECTOR, 1, limits) == GRANTED


def test_refill_counts_exactly_across_many_small_steps(limiter: RateLimiter, clock: FakeClock) -> None:
    # 7/hour refills one token every 514285.714... ms: fractional refill must neither be lost nor
    # rounded up, however often the bucket is read.
    limits = ConnectorLimits(per_hour=7, per_day=1000)
    limiter.acquire_emails(CONNECTOR, 7, limits)
    for _ in range(514):
        clock.advance(1.0)
        assert limiter.acquire_emails(CONNECTOR, 1, limits).granted is False
    clock.advance(0.285)
    assert limiter.acquire_emails(CONNECTOR, 1, limits) == denied(0.001, "hour")
    clock.advance(0.001)
    assert limiter.acquire_emails(CONNECTOR, 1, limits) == GRANTED


def test_limits_at_the_maximum_stay_exact(limiter: RateLimiter, clock: FakeClock) -> None:
    # 10^8/day * 86400000 ms is just below 2^53: the largest deficit the script stores exactly.
    limits = ConnectorLimits(per_hour=MAX_LIMIT, per_day=MAX_LIMIT)
    assert limiter.acquire_emails(CONNECTOR, MAX_LIMIT, limits) == GRANTED
    assert limiter.acquire_emails(CONNECTOR, 2, limits) == denied(0.002, "day")  # 1.157 tokens/ms

    clock.advance(0.001)

    assert limiter.get_usage_stats(CONNECTOR, "day", limits).remaining == 1
    assert limiter.get_usage_stats(CONNECTOR, "hour", limits).remaining == 27  # 27.7 tokens/ms


def test_acquire_emails_takes_from_hour_and_day_together(limiter: RateLimiter) -> None:
    limits = ConnectorLimits(per_hour=1000, per_day=5000)
    limiter.acquire_emails(CONNECTOR, 40, limits)

    assert limiter.get_usage_stats(CONNECTOR, "hour", limits).used == 40
    assert limiter.get_usage_stats(CONNECTOR, "day", limits).used == 40


def test_connectors_have_separate_buckets(limiter: RateLimiter) -> None:
    limits = ConnectorLimits(per_hour=5, per_day=5)
    limiter.acquire_emails(CONNECTOR, 5, limits)

    assert limiter.acquire_emails("another-connector", 5, limits) == GRANTED


# Denials --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "taken", "n", "expected"),
    [
        (ConnectorLimits(per_hour=3600, per_day=86400), 3600, 1, denied(1.0, "hour")),
        (ConnectorLimits(per_hour=3600, per_day=86400), 3598, 5, denied(3.0, "hour")),
        (ConnectorLimits(per_hour=1000, per_day=300), 300, 1, denied(288.0, "day")),
        # Both short: the wait is until n tokens are in every bucket, blamed on the slower one.
        (ConnectorLimits(per_hour=360, per_day=360), 360, 2, denied(480.0, "day")),
    ],
)
def test_denial_returns_wait_until_n_tokens_in_every_bucket(
    limiter: RateLimiter, limits: ConnectorLimits, taken: int, n: int, expected: Decision
) -> None:
    limiter.acquire_emails(CONNECTOR, taken, limits)

    assert limiter.acquire_emails(CONNECTOR, n, limits) == expected


def test_denial_by_day_debits_nothing_from_hour(limiter: RateLimiter) -> None:
    limits = ConnectorLimits(per_hour=1000, per_day=300)
    limiter.acquire_emails(CONNECTOR, 300, limits)

    for _ in range(50):
        limiter.acquire_emails(CONNECTOR, 1, limits)

    assert limiter.get_usage_stats(CONNECTOR, "hour", limits).remaining == 700


def test_denial_by_hour_debits_nothing_from_day(limiter: RateLimiter) -> None:
    limits = ConnectorLimits(per_hour=10, per_day=1000)
    limiter.acquire_emails(CONNECTOR, 8, limits)

    assert limiter.acquire_emails(CONNECTOR, 3, limits).blocked_by == "hour"
    assert limiter.get_usage_stats(CONNECTOR, "day", limits).used == 8
    assert limiter.acquire_emails(CONNECTOR, 2, limits) == GRANTED


@pytest.mark.parametrize(
    ("n", "bucket"),
    [(11, "hour"), (1001, "hour")],
)
def test_request_over_hour_capacity_is_an_error(limiter: RateLimiter, n: int, bucket: str) -> None:
    with pytest.raises(RequestExceedsCapacity, match=f"the {bucket} bucket holds at most 10"):
        limiter.acquire_emails(CONNECTOR, n, ConnectorLimits(per_hour=10, per_day=5000))


def test_request_over_day_capacity_is_an_error_and_debits_nothing(limiter: RateLimiter) -> None:
    limits = ConnectorLimits(per_hour=1000, per_day=300)
    with pytest.raises(RequestExceedsCapacity, match="day bucket holds at most 300"):
        limiter.acquire_emails(CONNECTOR, 301, limits)

    assert limiter.get_usage_stats(CONNECTOR, "hour", limits).used == 0


# Limits changed at run time -------------------------------------------------------------------------


def test_lowered_limit_keeps_what_was_used(limiter: RateLimiter) -> None:
    limiter.acquire_emails(CONNECTOR, 100, ConnectorLimits(per_hour=1000, per_day=5000))

    stats = limiter.get_usage_stats(CONNECTOR, "hour", ConnectorLimits(per_hour=500, per_day=5000))

    assert stats == UsageStats(used=100, limit=500, remaining=400, resets_in=720.0)


def test_lowered_limit_below_use_clamps_bucket_to_empty(limiter: RateLimiter) -> None:
    limiter.acquire_emails(CONNECTOR, 900, ConnectorLimits(per_hour=1000, per_day=5000))
    lowered = ConnectorLimits(per_hour=500, per_day=5000)

    assert limiter.get_usage_stats(CONNECTOR, "hour", lowered) == UsageStats(
        used=500, limit=500, remaining=0, resets_in=3600.0
    )
    # Empty, not overdrawn: one token comes back after 1/500 hour, at the new rate.
    assert limiter.acquire_emails(CONNECTOR, 1, lowered) == denied(7.2, "hour")


def test_raised_limit_takes_effect_at_once(limiter: RateLimiter) -> None:
    limiter.acquire_emails(CONNECTOR, 1000, ConnectorLimits(per_hour=1000, per_day=5000))

    assert limiter.acquire_emails(CONNECTOR, 1000, ConnectorLimits(per_hour=2000, per_day=5000)) == GRANTED


# The transactional reserve --------------------------------------------------------------------------

#: An hour budget of 100 with 20 kept for transactional mail (the day bucket never blocks here).
RESERVED = ConnectorLimits(per_hour=100, per_day=10_000, reserve_per_hour=20, reserve_per_day=0)


def test_a_take_keeping_the_reserve_draws_the_bucket_down_to_the_reserve_only(limiter: RateLimiter) -> None:
    assert limiter.acquire_emails(CONNECTOR, 80, RESERVED, keep_reserve=True) == GRANTED

    assert limiter.acquire_emails(CONNECTOR, 1, RESERVED, keep_reserve=True).granted is False
    assert limiter.get_usage_stats(CONNECTOR, "hour", RESERVED).remaining == 20


def test_a_take_not_keeping_the_reserve_may_use_it_all(limiter: RateLimiter) -> None:
    limiter.acquire_emails(CONNECTOR, 80, RESERVED, keep_reserve=True)

    assert limiter.acquire_emails(CONNECTOR, 20, RESERVED) == GRANTED
    assert limiter.acquire_emails(CONNECTOR, 1, RESERVED).granted is False


def test_transactional_takes_first_leave_bulk_only_what_is_above_the_reserve(limiter: RateLimiter) -> None:
    limiter.acquire_emails(CONNECTOR, 30, RESERVED)

    assert limiter.acquire_emails(CONNECTOR, 51, RESERVED, keep_reserve=True).granted is False
    assert limiter.acquire_emails(CONNECTOR, 50, RESERVED, keep_reserve=True) == GRANTED


def test_a_denial_keeping_the_reserve_waits_until_the_tokens_above_it_have_refilled(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    limiter.acquire_emails(CONNECTOR, 80, RESERVED, keep_reserve=True)

    # 100 an hour is one token every 36 s: two more above the reserve take 72 s.
    assert limiter.peek_emails(CONNECTOR, 2, RESERVED, keep_reserve=True) == denied(72.0, "hour")
    clock.advance(72)
    assert limiter.acquire_emails(CONNECTOR, 2, RESERVED, keep_reserve=True) == GRANTED


def test_a_take_keeping_the_reserve_larger_than_the_bucket_above_it_is_an_error(limiter: RateLimiter) -> None:
    with pytest.raises(RequestExceedsCapacity, match="hour bucket holds at most 80"):
        limiter.acquire_emails(CONNECTOR, 81, RESERVED, keep_reserve=True)


def test_the_day_reserve_is_kept_too(limiter: RateLimiter) -> None:
    limits = ConnectorLimits(per_hour=1000, per_day=1000, reserve_per_hour=0, reserve_per_day=100)

    assert limiter.acquire_emails(CONNECTOR, 900, limits, keep_reserve=True) == GRANTED
    assert limiter.acquire_emails(CONNECTOR, 1, limits, keep_reserve=True).blocked_by == "day"


def test_usage_stats_show_the_reserve_and_what_bulk_may_still_use(limiter: RateLimiter) -> None:
    limiter.acquire_emails(CONNECTOR, 70, RESERVED)

    stats = limiter.get_usage_stats(CONNECTOR, "hour", RESERVED)

    assert (stats.remaining, stats.reserved, stats.bulk_remaining) == (30, 20, 10)


@pytest.mark.parametrize(
    ("reserve_per_hour", "reserve_per_day"), [(-1, 0), (100, 0), (0, 10_000), (True, 0), (1.5, 0)]
)
def test_a_reserve_must_be_a_whole_number_below_its_limit(
    reserve_per_hour: object, reserve_per_day: object
) -> None:
    with pytest.raises(PayloadInvalid, match=r"ConnectorLimits\.reserve_per_"):
        ConnectorLimits(
            per_hour=100,
            per_day=10_000,
            reserve_per_hour=reserve_per_hour,  # type: ignore[arg-type]
            reserve_per_day=reserve_per_day,  # type: ignore[arg-type]
        )


# Reading without debiting ---------------------------------------------------------------------------


def test_usage_stats_of_an_untouched_bucket_show_it_full(limiter: RateLimiter) -> None:
    stats = limiter.get_usage_stats(CONNECTOR, "day", ONE_PER_SECOND)

    assert stats == UsageStats(used=0, limit=86400, remaining=86400, resets_in=0.0)


def test_usage_stats_count_partly_refilled_tokens_as_used(limiter: RateLimiter, clock: FakeClock) -> None:
    limiter.acquire_emails(CONNECTOR, 10, ONE_PER_SECOND)
    clock.advance(2.5)

    stats = limiter.get_usage_stats(CONNECTOR, "hour", ONE_PER_SECOND)

    assert stats == UsageStats(used=8, limit=3600, remaining=3592, resets_in=7.5)


@pytest.mark.parametrize(("taken", "n", "expected"), [(0, 10, True), (9, 1, True), (9, 2, False)])
def test_can_execute_answers_without_debiting(
    limiter: RateLimiter, taken: int, n: int, expected: bool
) -> None:
    limits = ConnectorLimits(per_hour=10, per_day=100)
    if taken:
        limiter.acquire_emails(CONNECTOR, taken, limits)

    assert limiter.can_execute(CONNECTOR, limits, n) is expected
    assert limiter.get_usage_stats(CONNECTOR, "hour", limits).used == taken


def test_peek_emails_says_what_a_take_would_answer_without_debiting(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    limits = ConnectorLimits(per_hour=10, per_day=100)
    limiter.acquire_emails(CONNECTOR, 10, limits)

    assert limiter.peek_emails(CONNECTOR, 1, limits) == denied(360.0, "hour")
    clock.advance(360)
    assert limiter.peek_emails(CONNECTOR, 1, limits) == GRANTED
    assert limiter.get_usage_stats(CONNECTOR, "hour", limits).used == 9


def test_reads_create_no_keys(limiter: RateLimiter, lua_redis: redis.Redis, redis_prefix: str) -> None:
    limiter.can_execute(CONNECTOR, ONE_PER_SECOND)
    limiter.get_usage_stats(CONNECTOR, "hour", ONE_PER_SECOND)

    assert list(lua_redis.scan_iter(match=f"{redis_prefix}*")) == []


# Expiry ---------------------------------------------------------------------------------------------


def test_bucket_key_expires_when_both_buckets_would_be_full(
    limiter: RateLimiter, lua_redis: redis.Redis, redis_prefix: str
) -> None:
    limiter.acquire_emails(CONNECTOR, 3, ONE_PER_SECOND)  # three seconds to refill either bucket

    assert 2000 < lua_redis.pttl(connector_bucket_key(redis_prefix, CONNECTOR)) <= 3000


def test_bucket_key_lives_until_the_slower_bucket_is_full(
    limiter: RateLimiter, lua_redis: redis.Redis, redis_prefix: str
) -> None:
    # The hour bucket refills 3 tokens in 3 s, the day bucket (1 token per 10 s) in 30 s.
    limiter.acquire_emails(CONNECTOR, 3, ConnectorLimits(per_hour=3600, per_day=8640))

    assert 27_000 < lua_redis.pttl(connector_bucket_key(redis_prefix, CONNECTOR)) <= 30_000


def test_full_bucket_leaves_no_key_behind(lua_redis: redis.Redis, redis_prefix: str) -> None:
    # 3.6M/hour and 86.4M/day refill a token a millisecond: the keys live for 1 ms.
    limiter = RateLimiter(lua_redis, key_prefix=redis_prefix)
    limiter.acquire_emails(CONNECTOR, 1, ConnectorLimits(per_hour=HOUR_MS, per_day=DAY_MS))
    time.sleep(0.05)

    assert list(lua_redis.scan_iter(match=f"{redis_prefix}*")) == []


def test_limiter_uses_redis_time_without_injected_clock(lua_redis: redis.Redis, redis_prefix: str) -> None:
    limiter = RateLimiter(lua_redis, key_prefix=redis_prefix)
    limiter.acquire_emails(CONNECTOR, 1, ONE_PER_SECOND)

    state = lua_redis.get(connector_bucket_key(redis_prefix, CONNECTOR)) or b""
    stamp = int(state.split()[0])  # "time deficit period deficit period"
    seconds, micros = lua_redis.time()
    assert abs(seconds * 1000 + micros // 1000 - stamp) < 60_000


def test_clock_going_back_refills_nothing_twice(limiter: RateLimiter, clock: FakeClock) -> None:
    limiter.acquire_emails(CONNECTOR, 3599, ONE_PER_SECOND)
    clock.advance(-30)
    assert limiter.acquire_emails(CONNECTOR, 1, ONE_PER_SECOND) == GRANTED
    assert limiter.get_usage_stats(CONNECTOR, "hour", ONE_PER_SECOND).remaining == 0

    clock.advance(31)  # one second after the first take, not 31 after the second
    assert limiter.get_usage_stats(CONNECTOR, "hour", ONE_PER_SECOND).remaining == 1


# A paused organization's small rate: giving tokens back --------------------------------------------

ORG = "0f7b2c1e-3a4d-4e5f-8a9b-1c2d3e4f5a6b"


def test_tokens_given_back_to_the_paused_rate_can_be_taken_again(limiter: RateLimiter) -> None:
    limiter.acquire_paused_emails(ORG, 10, per_minute=10)

    limiter.give_back_paused_emails(ORG, 3, per_minute=10)

    assert limiter.peek_paused_emails(ORG, per_minute=10)[1] == 3
    assert limiter.acquire_paused_emails(ORG, 3, per_minute=10) == GRANTED


def test_giving_back_never_fills_the_paused_rate_beyond_full_and_a_full_bucket_leaves_no_key(
    limiter: RateLimiter, lua_redis: redis.Redis, redis_prefix: str
) -> None:
    limiter.acquire_paused_emails(ORG, 2, per_minute=10)

    limiter.give_back_paused_emails(ORG, 5, per_minute=10)

    assert limiter.peek_paused_emails(ORG, per_minute=10)[1] == 10
    assert list(lua_redis.scan_iter(match=f"{redis_prefix}*")) == []


def test_giving_back_keeps_the_refill_since_the_take(limiter: RateLimiter, clock: FakeClock) -> None:
    limiter.acquire_paused_emails(ORG, 10, per_minute=10)
    clock.advance(12)  # two tokens refilled

    limiter.give_back_paused_emails(ORG, 3, per_minute=10)

    assert limiter.peek_paused_emails(ORG, per_minute=10)[1] == 5


def test_giving_back_to_an_untouched_paused_rate_writes_nothing(
    limiter: RateLimiter, lua_redis: redis.Redis, redis_prefix: str
) -> None:
    limiter.give_back_paused_emails(ORG, 1, per_minute=10)

    assert list(lua_redis.scan_iter(match=f"{redis_prefix}*")) == []


# Resend request rate and cooldown -------------------------------------------------------------------


def test_request_bucket_defaults_to_two_requests_a_second_one_at_a_time(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    assert [limiter.acquire_request_for(api_key_hash(API_KEY)).granted for _ in range(2)] == [True, False]
    assert limiter.acquire_request_for(api_key_hash(API_KEY)) == denied(
        0.625, "requests"
    )  # 2/s paced at 80 %

    clock.advance(0.625)
    assert limiter.acquire_request_for(api_key_hash(API_KEY)) == GRANTED


def test_request_bucket_never_lets_more_than_the_limit_into_one_second(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    granted_at = []
    for _ in range(400):  # 10 s in 25 ms steps, asking all the time
        if limiter.acquire_request_for(api_key_hash(API_KEY)).granted:
            granted_at.append(clock.now_ms)
        clock.advance(0.025)
    assert max(sum(1 for t in granted_at if start <= t < start + 1000) for start in granted_at) <= 2


def test_request_rate_set_by_one_worker_applies_to_all(
    lua_redis: redis.Redis, redis_prefix: str, clock: FakeClock
) -> None:
    worker_a = RateLimiter(lua_redis, key_prefix=redis_prefix, clock_ms=clock)
    worker_b = RateLimiter(lua_redis, key_prefix=redis_prefix, clock_ms=clock)

    worker_a.set_request_rate(API_KEY, 10)
    worker_b.acquire_request_for(api_key_hash(API_KEY))

    assert worker_b.acquire_request_for(api_key_hash(API_KEY)) == denied(
        0.125, "requests"
    )  # 10/s, not the default 2/s


def test_lowered_request_rate_clamps_the_bucket(limiter: RateLimiter) -> None:
    limiter.set_request_rate(API_KEY, 10)
    limiter.acquire_request_for(api_key_hash(API_KEY))

    limiter.set_request_rate(API_KEY, 1)

    assert limiter.acquire_request_for(api_key_hash(API_KEY)) == denied(1.25, "requests")


def test_request_rate_with_another_period_rescales_what_was_taken(limiter: RateLimiter) -> None:
    limiter.acquire_request_for(api_key_hash(API_KEY))  # the default bucket: 1 per 625 ms, now empty

    limiter.set_request_rate(API_KEY, 2.5)  # 1 per 500 ms

    assert limiter.acquire_request_for(api_key_hash(API_KEY)) == denied(0.5, "requests")


def test_request_over_request_capacity_is_an_error(limiter: RateLimiter) -> None:
    with pytest.raises(RequestExceedsCapacity, match="requests bucket holds at most 1"):
        limiter.acquire_request_for(api_key_hash(API_KEY), n=2)


def test_cooldown_denies_every_worker(
    limiter: RateLimiter, lua_redis: redis.Redis, redis_prefix: str
) -> None:
    other_worker = RateLimiter(lua_redis, key_prefix=redis_prefix)
    limiter.start_cooldown(API_KEY, 30)

    decision = other_worker.acquire_request_for(api_key_hash(API_KEY))

    assert (decision.granted, decision.blocked_by) == (False, "cooldown")
    assert 29 < decision.wait_seconds <= 30


def test_cooldown_denial_debits_nothing(
    limiter: RateLimiter, lua_redis: redis.Redis, redis_prefix: str
) -> None:
    limiter.start_cooldown(API_KEY, 30)
    limiter.acquire_request_for(api_key_hash(API_KEY))
    lua_redis.delete(f"{redis_prefix}cooldown:{api_key_hash(API_KEY)}")  # as if it had run out

    assert (
        limiter.acquire_request_for(api_key_hash(API_KEY)) == GRANTED
    )  # the bucket's one token was not taken


def test_shorter_cooldown_never_shortens_a_longer_one(limiter: RateLimiter) -> None:
    limiter.start_cooldown(API_KEY, 60)
    limiter.start_cooldown(API_KEY, 1)

    assert limiter.acquire_request_for(api_key_hash(API_KEY)).wait_seconds > 50


def test_longer_cooldown_extends_a_shorter_one(limiter: RateLimiter) -> None:
    limiter.start_cooldown(API_KEY, 1)
    limiter.start_cooldown(API_KEY, 60)

    assert limiter.acquire_request_for(api_key_hash(API_KEY)).wait_seconds > 50


def test_cooldown_is_per_api_key(limiter: RateLimiter) -> None:
    limiter.start_cooldown(API_KEY, 30)

    assert limiter.acquire_request_for(api_key_hash("re_another_key")).granted is True


def test_api_key_never_appears_in_redis(
    limiter: RateLimiter, lua_redis: redis.Redis, redis_prefix: str
) -> None:
    limiter.acquire_request_for(api_key_hash(API_KEY))
    limiter.set_request_rate(API_KEY, 5)
    limiter.start_cooldown(API_KEY, 5)

    keys = [key.decode() for key in lua_redis.scan_iter(match=f"{redis_prefix}*")]
    assert len(keys) == 3
    assert all(API_KEY not in key and api_key_hash(API_KEY) in key for key in keys)


# Floating point and arbitrary sequences -------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    per_hour=st.integers(min_value=1, max_value=5000),
    steps=st.lists(st.tuples(st.integers(0, 20_000), st.integers(1, 50)), min_size=1, max_size=60),
)
def test_grants_never_exceed_capacity_plus_refill(per_hour: int, steps: list[tuple[int, int]]) -> None:
    clock = FakeClock()
    limiter = RateLimiter(fakeredis.FakeRedis(server=fakeredis.FakeServer()), clock_ms=clock)
    limits = ConnectorLimits(per_hour=per_hour, per_day=10**8)
    granted = elapsed_ms = 0
    for advance_ms, n in steps:
        clock.now_ms += advance_ms
        elapsed_ms += advance_ms
        if n <= per_hour and limiter.acquire_emails(CONNECTOR, n, limits).granted:
            granted += n

    assert granted <= per_hour + elapsed_ms * per_hour // HOUR_MS


# Validation and pure helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("per_hour", "per_day"), [(0, 10), (10, 0), (-1, 10), (True, 10), (1.5, 10), (10, 10**8 + 1)]
)
def test_connector_limits_must_be_integers_from_1_to_the_exact_maximum(per_hour: int, per_day: int) -> None:
    with pytest.raises(PayloadInvalid, match=r"ConnectorLimits\.per_"):
        ConnectorLimits(per_hour=per_hour, per_day=per_day)


@pytest.mark.parametrize("n", [0, -1, True, 1.0])
def test_token_count_must_be_a_positive_integer(n: int) -> None:
    limiter = RateLimiter(fakeredis.FakeRedis())
    with pytest.raises(PayloadInvalid, match="token count n"):
        limiter.acquire_emails(CONNECTOR, n, ONE_PER_SECOND)


@pytest.mark.parametrize(
    "call",
    [
        lambda limiter: limiter.get_usage_stats(CONNECTOR, "week", ONE_PER_SECOND),
        lambda limiter: limiter.set_request_rate(API_KEY, 0),
        lambda limiter: limiter.set_request_rate(API_KEY, float("nan")),
        lambda limiter: limiter.start_cooldown(API_KEY, 0),
        lambda limiter: limiter.start_cooldown(API_KEY, float("inf")),
        lambda limiter: limiter.acquire_emails("", 1, ONE_PER_SECOND),
    ],
)
def test_bad_arguments_raise_payload_invalid(call: Callable[[RateLimiter], object]) -> None:
    limiter = RateLimiter(fakeredis.FakeRedis())
    with pytest.raises(PayloadInvalid):
        call(limiter)


@pytest.mark.parametrize(
    ("per_second", "shape"),
    [(2.0, (1, 625)), (10, (1, 125)), (0.5, (1, 2500)), (2.5, (1, 500)), (0.001, (1, 1_250_000))],
)
def test_request_bucket_shape_keeps_the_rate(per_second: float, shape: tuple[int, int]) -> None:
    assert request_bucket_shape(per_second) == shape


def test_usage_from_deficit_rounds_remaining_down_and_reset_up() -> None:
    # 2.5 tokens missing from a 3600/hour bucket: 2.5 s to refill, 3597 whole tokens available.
    assert usage_from_deficit(2 * HOUR_MS + HOUR_MS // 2, 3600, HOUR_MS) == UsageStats(
        used=3, limit=3600, remaining=3597, resets_in=2.5
    )


def test_api_key_hash_is_stable_and_hides_the_key() -> None:
    assert api_key_hash(API_KEY) == api_key_hash(API_KEY)
    assert api_key_hash(API_KEY) != api_key_hash(API_KEY + "x")
    assert API_KEY not in api_key_hash(API_KEY)


# Redis unreachable ----------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "call",
    [
        lambda limiter: limiter.acquire_emails(CONNECTOR, 1, ONE_PER_SECOND),
        lambda limiter: limiter.can_execute(CONNECTOR, ONE_PER_SECOND),
        lambda limiter: limiter.get_usage_stats(CONNECTOR, "day", ONE_PER_SECOND),
        lambda limiter: limiter.acquire_request_for(api_key_hash(API_KEY)),
        lambda limiter: limiter.set_request_rate(API_KEY, 5),
        lambda limiter: limiter.start_cooldown(API_KEY, 5),
    ],
)
def test_unreachable_redis_raises_backend_unavailable(call: Callable[[RateLimiter], object]) -> None:
    settings = load_settings(redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    limiter = RateLimiter.from_settings(settings)

    with pytest.raises(RateLimitBackendUnavailable, match="Redis") as caught:
        call(limiter)

    assert isinstance(caught.value.__cause__, redis.ConnectionError)
    assert API_KEY not in str(caught.value)


def test_from_settings_uses_redis_url_prefix_and_request_rate(
    real_redis: redis.Redis, redis_prefix: str
) -> None:
    settings = load_settings(
        redis_url=REDIS_URL, pilot_redis_prefix=redis_prefix, resend_requests_per_second=5
    )
    limiter = RateLimiter.from_settings(settings)

    assert [limiter.acquire_request_for(api_key_hash(API_KEY)).granted for _ in range(2)] == [True, False]
    assert (
        limiter.acquire_request_for(api_key_hash(API_KEY)).wait_seconds <= 0.25
    )  # 5/s paced at 80 %: 250 ms apart
    assert len(list(real_redis.scan_iter(match=f"{redis_prefix}requests:*"))) == 1


def test_script_is_reloaded_after_a_script_flush(clock: FakeClock) -> None:
    # Redis loses its scripts on restart; the limiter must not (fakeredis only: never flush a shared Redis).
    fake = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    limiter = RateLimiter(fake, clock_ms=clock)
    limiter.acquire_emails(CONNECTOR, 1, ONE_PER_SECOND)
    fake.script_flush()

    assert limiter.acquire_emails(CONNECTOR, 1, ONE_PER_SECOND) == GRANTED


def test_malformed_bucket_state_fails_closed_naming_the_key(
    limiter: RateLimiter, lua_redis: redis.Redis, redis_prefix: str
) -> None:
    key = connector_bucket_key(redis_prefix, CONNECTOR)
    lua_redis.set(key, "0 12 3600000")  # one bucket's worth where hour and day are expected

    with pytest.raises(RateLimitBackendUnavailable, match=f"{key} is malformed"):
        limiter.acquire_emails(CONNECTOR, 1, ONE_PER_SECOND)

    assert lua_redis.get(key) == b"0 12 3600000"
