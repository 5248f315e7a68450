"""A paused organization's transactional mail still goes, at a small rate of its own.

At most ``PILOT_REPUTATION_PAUSED_TRANSACTIONAL_PER_MINUTE`` emails a minute per organization (a
token bucket in Redis, beside the connector's budget, which they pay too); the rest wait ``deferred``,
spaced as the bucket refills, and a resume releases them at once. Tokens taken for rows the
connector's budget then turns away are given back (:func:`give_back`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from shared.reputation.guard import RATE_PREFIX
from shared.sending.context import SendContext


@dataclass(frozen=True)
class RateTake:
    """The first ``paid`` rows go now; each other row waits its own ``waits`` seconds (in order)."""

    paid: int
    waits: list[float]
    reason: str


def take(ctx: SendContext, organization_id: uuid.UUID, count: int) -> RateTake:
    """Take the paused organization's tokens for up to ``count`` transactional rows, in queue order.

    Raises what the limiter raises (the caller fails closed).
    """
    limiter, per_minute = ctx.limiter, ctx.settings.pilot_reputation_paused_transactional_per_minute
    reason = f"{RATE_PREFIX}organization paused: its transactional mail leaves at most {per_minute} a minute"
    wanted = min(count, per_minute)
    if limiter.acquire_paused_emails(organization_id, wanted, per_minute=per_minute).granted:
        paid = wanted
    else:
        paid = 0
        _, left = limiter.peek_paused_emails(organization_id, per_minute=per_minute)
        if (
            0 < left < wanted
            and limiter.acquire_paused_emails(organization_id, left, per_minute=per_minute).granted
        ):
            paid = left
    if paid == count:
        return RateTake(paid, [], reason)
    next_token, _ = limiter.peek_paused_emails(organization_id, per_minute=per_minute)
    gap = 60.0 / per_minute
    first = next_token.wait_seconds or gap
    return RateTake(paid, [first + i * gap for i in range(count - paid)], reason)


def give_back(ctx: SendContext, organization_id: uuid.UUID, count: int) -> None:
    """Return the tokens :func:`take` took for ``count`` rows that did not leave after all.

    Raises what the limiter raises (the tokens then stay spent).
    """
    per_minute = ctx.settings.pilot_reputation_paused_transactional_per_minute
    ctx.limiter.give_back_paused_emails(organization_id, count, per_minute=per_minute)
