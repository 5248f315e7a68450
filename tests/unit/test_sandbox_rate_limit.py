"""Per-key request windows with Resend's headers, and the daily quota."""

from __future__ import annotations

from datetime import date

import pytest

from sandbox.api_errors import ApiError
from sandbox.rate_limit import DailyQuota, RateLimiter


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_limiter_allows_rate_requests_per_second_then_refuses() -> None:
    limiter = RateLimiter(clock=FakeClock())
    assert [limiter.hit("k", 2.0).allowed for _ in range(3)] == [True, True, False]


def test_limiter_opens_a_new_window_after_one_second() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    limiter.hit("k", 1.0)
    clock.now += 1.0
    assert limiter.hit("k", 1.0).allowed


def test_limiter_headers_follow_resend() -> None:
    limiter = RateLimiter(clock=FakeClock())
    limiter.hit("k", 2.0)
    limiter.hit("k", 2.0)
    headers = limiter.hit("k", 2.0).headers()
    assert headers["ratelimit-limit"] == "2"
    assert headers["ratelimit-remaining"] == "0"
    assert headers["ratelimit-reset"] == "1"
    assert headers["retry-after"] == "1"


def test_allowed_request_has_no_retry_after() -> None:
    assert "retry-after" not in RateLimiter(clock=FakeClock()).hit("k", 2.0).headers()


def test_limiter_counts_keys_apart() -> None:
    limiter = RateLimiter(clock=FakeClock())
    limiter.hit("a", 1.0)
    assert limiter.hit("b", 1.0).allowed


def test_rate_below_one_per_second_spaces_single_requests() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    assert limiter.hit("k", 0.5).allowed
    clock.now += 1.5
    decision = limiter.hit("k", 0.5)
    assert not decision.allowed
    assert decision.reset == 1
    clock.now += 0.5
    assert limiter.hit("k", 0.5).allowed


def test_limiter_clear_forgets_windows() -> None:
    limiter = RateLimiter(clock=FakeClock())
    limiter.hit("k", 1.0)
    limiter.clear()
    assert limiter.hit("k", 1.0).allowed


def test_quota_counts_emails_per_key_and_day() -> None:
    day = [date(2026, 1, 1)]
    quota = DailyQuota(today=lambda: day[0])
    assert quota.take("k", 3, 5) == 3
    with pytest.raises(ApiError) as caught:
        quota.take("k", 3, 5)
    assert (caught.value.status, caught.value.name) == (429, "daily_quota_exceeded")
    assert quota.take("other", 5, 5) == 5
    day[0] = date(2026, 1, 2)
    assert quota.take("k", 5, 5) == 5


def test_quota_zero_means_unlimited() -> None:
    assert DailyQuota().take("k", 10_000, 0) == 10_000
