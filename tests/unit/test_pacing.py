"""take_request_token: a short pacing wait for the API key's next request token is slept, not retried."""

from __future__ import annotations

import fakeredis
import pytest

from shared.rate_limit import RateLimiter, api_key_hash
from shared.sending.pacing import MAX_PACE_SLEEPS, PACE_SLEEP_MAX_S, take_request_token

API_KEY = "re_pacing_test_key"
KEY_HASH = api_key_hash(API_KEY)


class Clock:
    """An injected clock (ms) that the sleeps advance."""

    def __init__(self) -> None:
        self.now_ms = 1_700_000_000_000
        self.slept: list[float] = []

    def __call__(self) -> int:
        return self.now_ms

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now_ms += round(seconds * 1000)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def limiter_at(
    clock: Clock, requests_per_second: float, server: fakeredis.FakeServer | None = None
) -> RateLimiter:
    client = fakeredis.FakeRedis(server=server or fakeredis.FakeServer())
    return RateLimiter(client, key_prefix="t:", requests_per_second=requests_per_second, clock_ms=clock)


def test_a_free_token_is_taken_without_sleeping(clock: Clock) -> None:
    decision = take_request_token(limiter_at(clock, 100), KEY_HASH, clock.sleep)

    assert decision.granted
    assert clock.slept == []


def test_a_short_pacing_wait_is_slept_and_the_token_taken(clock: Clock) -> None:
    limiter = limiter_at(clock, 100)  # one request every 12.5 ms (80 % of 100/s)
    take_request_token(limiter, KEY_HASH, clock.sleep)

    decision = take_request_token(limiter, KEY_HASH, clock.sleep)

    assert decision.granted
    assert clock.slept == [0.013]


def test_a_wait_longer_than_the_sleep_limit_is_returned_at_once(clock: Clock) -> None:
    limiter = limiter_at(clock, 2)  # Resend's default: one request every 625 ms
    take_request_token(limiter, KEY_HASH, clock.sleep)

    decision = take_request_token(limiter, KEY_HASH, clock.sleep)

    assert not decision.granted
    assert decision.blocked_by == "requests"
    assert decision.wait_seconds > PACE_SLEEP_MAX_S
    assert clock.slept == []


def test_the_cooldown_after_a_429_is_never_slept_through(clock: Clock) -> None:
    limiter = limiter_at(clock, 100)
    limiter.start_cooldown(API_KEY, 0.01)

    decision = take_request_token(limiter, KEY_HASH, clock.sleep)

    assert (decision.granted, decision.blocked_by) == (False, "cooldown")
    assert clock.slept == []


def test_the_refusal_is_returned_after_a_few_sleeps_when_other_workers_keep_winning(clock: Clock) -> None:
    server = fakeredis.FakeServer()
    limiter, rival = limiter_at(clock, 100, server), limiter_at(clock, 100, server)  # two workers, one key

    def sleep_while_a_rival_takes_the_next_token(seconds: float) -> None:
        clock.sleep(seconds)
        assert rival.acquire_request_for(KEY_HASH).granted

    take_request_token(limiter, KEY_HASH, clock.sleep)
    decision = take_request_token(limiter, KEY_HASH, sleep_while_a_rival_takes_the_next_token)

    assert not decision.granted
    assert len(clock.slept) == MAX_PACE_SLEEPS
