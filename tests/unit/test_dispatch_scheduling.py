"""Scheduling an API key's next dispatch: one ``pilot.dispatch`` pending per key, never a stuck one.

Each test runs on fakeredis (with Lua) and on the real Redis on loopback, which fails (never skips)
when it is down. The reservation note expires on Redis's own clock, so the scheduler's clock here
is the real time, moved back where a test needs a dispatch scheduled in the past.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from shared import task_names
from shared.rate_limit import RateLimiter
from shared.sending.retry_policy import MAX_COUNTDOWN_S
from shared.sending.scheduling import RESERVATION_KEEP_MS, ReservingScheduler

KEY_HASH = "a" * 64


class Clock:
    """Real unix milliseconds, shifted by ``offset_ms``."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def __call__(self) -> int:
        return int(time.time() * 1000) + self.offset_ms


class Broker:
    """Records what the scheduler publishes; fails when told to."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any], float]] = []
        self.down = False

    def __call__(self, name: str, kwargs: dict[str, Any], countdown: float) -> None:
        if self.down:
            raise ConnectionError("broker down")
        self.published.append((name, kwargs, countdown))


@pytest.fixture
def limiter(lua_redis: redis.Redis, redis_prefix: str) -> RateLimiter:
    return RateLimiter(lua_redis, key_prefix=redis_prefix)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def broker() -> Broker:
    return Broker()


@pytest.fixture
def scheduler(limiter: RateLimiter, broker: Broker, clock: Clock) -> ReservingScheduler:
    return ReservingScheduler(limiter, broker, clock_ms=clock)


def test_a_first_need_publishes_a_dispatch_with_its_countdown_and_time(
    scheduler: ReservingScheduler, broker: Broker
) -> None:
    before = int(time.time() * 1000)
    scheduler.schedule(KEY_HASH, 2.0)

    [(name, kwargs, countdown)] = broker.published
    assert (name, kwargs["dispatch_key"], countdown) == (task_names.DISPATCH, KEY_HASH, 2.0)
    assert before + 2000 <= kwargs["at_ms"] <= int(time.time() * 1000) + 2000


def test_a_later_need_publishes_nothing_while_an_earlier_dispatch_is_pending(
    scheduler: ReservingScheduler, broker: Broker
) -> None:
    scheduler.schedule(KEY_HASH, 1.0)
    scheduler.schedule(KEY_HASH, 3.0)
    scheduler.schedule(KEY_HASH, 1.5)

    assert len(broker.published) == 1


def test_an_earlier_need_publishes_another_dispatch(scheduler: ReservingScheduler, broker: Broker) -> None:
    scheduler.schedule(KEY_HASH, 5.0)
    scheduler.schedule(KEY_HASH, 0.5)

    assert [countdown for _, _, countdown in broker.published] == [5.0, 0.5]


def test_each_api_key_has_its_own_pending_dispatch(scheduler: ReservingScheduler, broker: Broker) -> None:
    scheduler.schedule(KEY_HASH, 1.0)
    scheduler.schedule("b" * 64, 1.0)

    assert [kwargs["dispatch_key"] for _, kwargs, _ in broker.published] == [KEY_HASH, "b" * 64]


def test_a_started_dispatch_lets_the_next_need_publish(
    scheduler: ReservingScheduler, limiter: RateLimiter, broker: Broker
) -> None:
    scheduler.schedule(KEY_HASH, 1.0)
    limiter.release_dispatch(KEY_HASH, broker.published[0][1]["at_ms"])

    scheduler.schedule(KEY_HASH, 1.0)

    assert len(broker.published) == 2


def test_a_started_dispatch_leaves_a_later_pending_one_in_place(
    scheduler: ReservingScheduler, limiter: RateLimiter, broker: Broker, clock: Clock
) -> None:
    scheduler.schedule(KEY_HASH, 5.0)
    limiter.release_dispatch(KEY_HASH, clock())  # an older dispatch, starting now

    scheduler.schedule(KEY_HASH, 6.0)

    assert len(broker.published) == 1


def test_a_started_dispatch_fulfils_an_earlier_one_that_never_ran(
    scheduler: ReservingScheduler, limiter: RateLimiter, broker: Broker, clock: Clock
) -> None:
    clock.offset_ms = -2_000
    scheduler.schedule(KEY_HASH, 1.0)  # due a second ago; its message was lost with a worker
    clock.offset_ms = 0
    limiter.release_dispatch(KEY_HASH, clock())  # another dispatch of the key starts now

    scheduler.schedule(KEY_HASH, 1.0)

    assert len(broker.published) == 2


def test_a_dispatch_that_never_started_stops_holding_the_key_once_it_is_late(
    scheduler: ReservingScheduler, broker: Broker, clock: Clock
) -> None:
    clock.offset_ms = -(RESERVATION_KEEP_MS + 1_000)  # scheduled for a time long gone, never run
    scheduler.schedule(KEY_HASH, 0.0)
    clock.offset_ms = 0

    scheduler.schedule(KEY_HASH, 1.0)

    assert len(broker.published) == 2


def test_a_wait_longer_than_a_countdown_is_left_to_beat(
    scheduler: ReservingScheduler, broker: Broker
) -> None:
    scheduler.schedule(KEY_HASH, MAX_COUNTDOWN_S + 1)

    assert broker.published == []


def test_a_negative_delay_dispatches_now(scheduler: ReservingScheduler, broker: Broker) -> None:
    scheduler.schedule(KEY_HASH, -3.0)

    assert broker.published[0][2] == 0.0


def test_a_dispatch_the_broker_refused_does_not_hold_the_key(
    scheduler: ReservingScheduler, broker: Broker
) -> None:
    broker.down = True
    scheduler.schedule(KEY_HASH, 1.0)  # logged, not raised: beat's sweep finds the rows
    broker.down = False

    scheduler.schedule(KEY_HASH, 1.0)

    assert len(broker.published) == 1


def test_redis_down_schedules_nothing_and_raises_nothing(broker: Broker) -> None:
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    scheduler = ReservingScheduler(RateLimiter(unreachable, key_prefix="t:"), broker)

    scheduler.schedule(KEY_HASH, 1.0)

    assert broker.published == []
