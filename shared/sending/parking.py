"""When a row parked for a spent connector budget should come back: after the rows parked before it.

A row waits for the tokens of every row of its connector already parked for later, not only its own,
so a backlog comes back at the rate the budget refills instead of as a herd at each release
(docs/architecture.md, "Rate limiting").
"""

from __future__ import annotations

import uuid

from shared.rate_limit import DAY_MS, HOUR_MS, ConnectorLimits, Period, RateLimiter

#: Wait kinds meaning "the connector's email budget is spent" (``Decision.blocked_by`` or ours).
BUDGET_KINDS = frozenset({"hour", "day", "budget"})
_BUCKETS: tuple[tuple[Period, int], ...] = (("hour", HOUR_MS), ("day", DAY_MS))


def backlog_wait(
    limiter: RateLimiter, connector_id: uuid.UUID, limits: ConnectorLimits, count: int, *, bulk: bool = False
) -> float:
    """Seconds until the hour and the day buckets will have given ``count`` more tokens than they
    hold now (above the reserve, for ``bulk`` mail). ``count`` may exceed a bucket's capacity: it
    is a queue, taken over several refills."""
    waits = [0.0]
    for period, period_ms in _BUCKETS:
        stats = limiter.get_usage_stats(connector_id, period, limits)
        missing = count - (stats.bulk_remaining if bulk else stats.remaining)
        waits.append(max(0, missing) * period_ms / 1000 / stats.limit)
    return max(waits)


def parking_seconds(
    limiter: RateLimiter,
    connector_id: uuid.UUID,
    limits: ConnectorLimits,
    *,
    ahead: int,
    count: int,
    seconds: float,
    bulk: bool = False,
) -> float:
    """How long to park ``count`` rows a budget wait of ``seconds`` stopped, behind the ``ahead``
    rows of the connector parked for later already (``shared.sending.queue.parked_ahead``)."""
    if not ahead:
        return seconds
    return max(seconds, backlog_wait(limiter, connector_id, limits, ahead + count, bulk=bulk))
