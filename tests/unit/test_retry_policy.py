"""shared.sending.retry_policy: backoff with full jitter, and Resend's taxonomy mapped to actions."""

from __future__ import annotations

import pytest

from shared.errors import (
    ResendAuthError,
    ResendError,
    ResendIdempotencyInFlight,
    ResendIdempotencyMismatch,
    ResendQuotaExceeded,
    ResendRateLimited,
    ResendRejected,
    ResendServerError,
    ResendTransportError,
)
from shared.sending.retry_policy import (
    BACKOFF_CAP_S,
    DEFAULT_QUOTA_WAIT_S,
    DEFAULT_RATE_LIMIT_WAIT_S,
    MAX_ATTEMPTS,
    ActionKind,
    action_for,
    attempts_exhausted,
    compute_backoff,
    is_short_wait,
)


@pytest.mark.parametrize(
    ("attempts", "step"), [(1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0), (6, 60.0), (40, 60.0)]
)
def test_compute_backoff_top_of_the_range_doubles_up_to_the_cap(attempts: int, step: float) -> None:
    assert compute_backoff(attempts, rand=lambda: 1.0) == step


def test_compute_backoff_full_jitter_can_be_zero() -> None:
    assert compute_backoff(3, rand=lambda: 0.0) == 0.0


def test_compute_backoff_is_uniform_within_the_step() -> None:
    assert compute_backoff(3, rand=lambda: 0.25) == 2.0


def test_compute_backoff_never_exceeds_the_cap_with_real_randomness() -> None:
    assert all(0 <= compute_backoff(n) <= BACKOFF_CAP_S for n in range(1, 50))


def test_compute_backoff_refuses_zero_attempts() -> None:
    with pytest.raises(ValueError, match="attempts"):
        compute_backoff(0)


def error(cls: type[ResendError], retry_after: float | None = None) -> ResendError:
    return cls("message", status_code=400, retry_after=retry_after)


@pytest.mark.parametrize(
    ("exc", "kind", "uses_attempt"),
    [
        (error(ResendRateLimited, 3), ActionKind.WAIT, False),
        (error(ResendQuotaExceeded, 900), ActionKind.DEFER, False),
        (error(ResendIdempotencyInFlight), ActionKind.RETRY, True),
        (error(ResendServerError), ActionKind.RETRY, True),
        (error(ResendTransportError), ActionKind.RETRY, True),
        (error(ResendIdempotencyMismatch), ActionKind.FAIL, True),
        (error(ResendAuthError), ActionKind.FAIL_AUTH, True),
        (error(ResendRejected), ActionKind.FAIL, True),
    ],
)
def test_action_for_maps_the_taxonomy(exc: ResendError, kind: ActionKind, uses_attempt: bool) -> None:
    action = action_for(exc, attempts=1, rand=lambda: 0.5)

    assert (action.kind, action.uses_attempt) == (kind, uses_attempt)


def test_action_for_rate_limit_waits_exactly_retry_after() -> None:
    assert action_for(error(ResendRateLimited, 7.5), attempts=1).delay == 7.5


@pytest.mark.parametrize(
    ("cls", "default"),
    [(ResendRateLimited, DEFAULT_RATE_LIMIT_WAIT_S), (ResendQuotaExceeded, DEFAULT_QUOTA_WAIT_S)],
)
def test_action_for_without_retry_after_uses_the_default_wait(cls: type[ResendError], default: float) -> None:
    assert action_for(error(cls), attempts=1).delay == default


def test_action_for_server_error_backs_off_by_attempts() -> None:
    assert action_for(error(ResendServerError), attempts=3, rand=lambda: 1.0).delay == 8.0


@pytest.mark.parametrize(("seconds", "short"), [(0.0, True), (60.0, True), (60.1, False), (3600.0, False)])
def test_is_short_wait_only_up_to_a_minute(seconds: float, short: bool) -> None:
    assert is_short_wait(seconds) is short


@pytest.mark.parametrize(
    ("attempts", "exhausted"), [(0, False), (MAX_ATTEMPTS - 1, False), (MAX_ATTEMPTS, True)]
)
def test_attempts_exhausted_at_the_cap(attempts: int, exhausted: bool) -> None:
    assert attempts_exhausted(attempts) is exhausted
