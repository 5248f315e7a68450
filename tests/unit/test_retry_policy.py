"""shared.sending.retry_policy: Resend's taxonomy mapped to actions."""

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
    DEFAULT_QUOTA_WAIT_S,
    DEFAULT_RATE_LIMIT_WAIT_S,
    MAX_ATTEMPTS,
    ActionKind,
    action_for,
    attempts_exhausted,
    is_short_wait,
)


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
