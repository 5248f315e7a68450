"""When and how a send is tried again: pure functions, no I/O.

Every Resend answer (or missing answer) maps to one :class:`Action`: the table is in
docs/architecture.md, "Errors and what the send path does". Every wait is kept in the rows, in
PostgreSQL, never as a long Celery countdown ("Reliability choices").
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from shared.backoff import compute_backoff
from shared.errors import (
    ResendAuthError,
    ResendError,
    ResendIdempotencyInFlight,
    ResendIdempotencyMismatch,
    ResendQuotaExceeded,
    ResendRateLimited,
    ResendServerError,
    ResendTransportError,
)

#: Attempts (HTTP calls that may have reached Resend, or crashes mid-send) before a row is failed.
MAX_ATTEMPTS = 8
#: Longest wait spent as a Celery countdown; longer waits are stored as ``next_attempt_at``.
MAX_COUNTDOWN_S = 60.0
#: Wait after a 429 that carried no usable ``retry-after``.
DEFAULT_RATE_LIMIT_WAIT_S = 1.0
#: Wait after a quota answer without a reset time (Resend's quotas reset daily or monthly).
DEFAULT_QUOTA_WAIT_S = 3600.0
#: A paused or failing connector is looked at again after its next status check.
PAUSED_CONNECTOR_WAIT_S = 300.0


class ActionKind(StrEnum):
    """What to do with the recipients of a request that did not succeed."""

    RETRY = "retry"  # same key, after a backoff; uses an attempt
    WAIT = "wait"  # rate limited: after retry-after; no attempt used
    DEFER = "defer"  # quota spent: park until reset; no attempt used
    FAIL = "fail"  # permanent for this send
    FAIL_AUTH = "fail_auth"  # permanent for this send, and the connector's key is unusable


@dataclass(frozen=True)
class Action:
    """The decision for one error: what to do, after how long, and whether it used an attempt."""

    kind: ActionKind
    delay: float = 0.0
    uses_attempt: bool = True


def action_for(error: ResendError, *, attempts: int, rand: Callable[[], float] = random.random) -> Action:
    """The action for ``error`` after the row's ``attempts`` attempts (taxonomy in the module doc)."""
    if isinstance(error, ResendRateLimited):
        return Action(ActionKind.WAIT, wait_seconds(error.retry_after, DEFAULT_RATE_LIMIT_WAIT_S), False)
    if isinstance(error, ResendQuotaExceeded):
        return Action(ActionKind.DEFER, wait_seconds(error.retry_after, DEFAULT_QUOTA_WAIT_S), False)
    if isinstance(error, ResendAuthError):
        return Action(ActionKind.FAIL_AUTH)
    if isinstance(error, ResendIdempotencyMismatch):
        return Action(ActionKind.FAIL)
    if isinstance(error, ResendIdempotencyInFlight | ResendServerError | ResendTransportError):
        return Action(ActionKind.RETRY, compute_backoff(max(attempts, 1), rand=rand))
    return Action(ActionKind.FAIL)


def wait_seconds(retry_after: float | None, default: float) -> float:
    """``retry_after`` when Resend gave a usable one, else ``default``; never negative."""
    if retry_after is None or retry_after != retry_after or retry_after < 0:
        return default
    return float(retry_after)


def is_short_wait(seconds: float) -> bool:
    """Whether a wait may be spent as a Celery countdown (else it is deferred in PostgreSQL)."""
    return seconds <= MAX_COUNTDOWN_S


def attempts_exhausted(attempts: int, *, max_attempts: int = MAX_ATTEMPTS) -> bool:
    """Whether a row that has used ``attempts`` may not be tried again."""
    return attempts >= max_attempts
