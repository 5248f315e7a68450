"""A connector's email budget (its hour and day buckets) for the rows of a unit.

The rows it pays go; the rest are parked (``deferred``) behind the rows parked before them, so a
backlog comes back at the rate the budget refills (:mod:`shared.sending.parking`). A budget this
process saw spent is peeked at first (:mod:`shared.sending.spent_budgets`), so rows waiting for it
take no token from any bucket.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from shared.models import Priority
from shared.rate_limit import ConnectorLimits, Decision, Period, UsageStats
from shared.sending import queue
from shared.sending.context import SendContext
from shared.sending.parking import parking_seconds

_PERIODS: tuple[tuple[Period, float], ...] = (("hour", 3600.0), ("day", 86400.0))


@dataclass(frozen=True)
class BudgetWait:
    """Rows the budget cannot pay now: how long until it can, why (``kind``: hour, day, budget)."""

    seconds: float
    reason: str
    kind: str


@dataclass(frozen=True)
class BudgetTake:
    """The first ``paid`` rows are paid for; the rest wait (``wait``) if there are any."""

    paid: int
    wait: BudgetWait | None = None


def take_emails(
    ctx: SendContext, connector_id: uuid.UUID, limits: ConnectorLimits, count: int, priority: Priority
) -> BudgetTake:
    """Take tokens for up to ``count`` emails of ``priority``: all of them, else as many as both
    buckets still hold for it (bulk mail leaves the transactional reserve alone).

    Raises what :meth:`RateLimiter.acquire_emails` raises (the caller fails closed).
    """
    limiter, spent = ctx.limiter, ctx.spent_budgets
    bulk = priority is Priority.BULK
    refused = spent.refusal(limiter, connector_id, 1, limits, priority)
    if refused is not None:
        return BudgetTake(0, refusal_wait(refused))
    wanted = min(
        count,
        limits.per_hour - _reserve(limits, "hour", bulk),
        limits.per_day - _reserve(limits, "day", bulk),
    )
    decision = limiter.acquire_emails(connector_id, wanted, limits, keep_reserve=bulk)
    paid = wanted if decision.granted else _take_what_is_left(ctx, connector_id, limits, wanted, bulk)
    ctx.metrics.sample_buckets(limiter, connector_id, limits)
    if paid == count:
        return BudgetTake(paid)
    spent.saw_spent(connector_id, priority)
    if paid == 0:
        return BudgetTake(0, refusal_wait(decision))
    # Wait until the buckets hold tokens for every row left, not just one: the rest is parked
    # instead of coming back row by row.
    wait = _tokens_wait(ctx, connector_id, limits, count - paid, bulk)
    return BudgetTake(paid, BudgetWait(wait, "connector budget spent", "budget"))


def parked_until(
    ctx: SendContext,
    conn: psycopg.Connection[Any],
    connector_id: uuid.UUID,
    limits: ConnectorLimits,
    *,
    count: int,
    wait: BudgetWait,
    now: datetime,
    priority: Priority,
) -> datetime:
    """When ``count`` rows of ``priority`` the budget turned away come back: behind the rows parked
    before them that go first (bulk rows: every class's; transactional rows: their own class's)."""
    ahead = queue.parked_ahead(conn, connector_id, now=now, priority=priority)
    seconds = parking_seconds(
        ctx.limiter,
        connector_id,
        limits,
        ahead=ahead,
        count=count,
        seconds=wait.seconds,
        bulk=priority is Priority.BULK,
    )
    return now + timedelta(seconds=seconds)


def refusal_wait(decision: Decision) -> BudgetWait:
    """The wait a refusal of the connector's email budget asks for."""
    return BudgetWait(
        decision.wait_seconds,
        f"connector {decision.blocked_by} budget spent",
        decision.blocked_by or "budget",
    )


def _take_what_is_left(
    ctx: SendContext, connector_id: uuid.UUID, limits: ConnectorLimits, wanted: int, bulk: bool
) -> int:
    """Take as many email tokens as both buckets still hold for the class (a unit sends what it may)."""
    limiter = ctx.limiter
    left = min(
        available(limiter.get_usage_stats(connector_id, period, limits), bulk) for period, _ in _PERIODS
    )
    n = min(wanted - 1, left)
    if n > 0 and limiter.acquire_emails(connector_id, n, limits, keep_reserve=bulk).granted:
        return n
    return 0


def _tokens_wait(
    ctx: SendContext, connector_id: uuid.UUID, limits: ConnectorLimits, count: int, bulk: bool
) -> float:
    """Seconds until both the hour and the day bucket hold ``count`` more email tokens for the class."""
    waits = [0.0]
    for period, seconds in _PERIODS:
        stats = ctx.limiter.get_usage_stats(connector_id, period, limits)
        usable = stats.limit - stats.reserved if bulk else stats.limit
        missing = min(count, usable) - available(stats, bulk)
        waits.append(max(0, missing) * seconds / stats.limit)
    return max(waits)


def available(stats: UsageStats, bulk: bool) -> int:
    """The tokens of a bucket a take may use: above the reserve for bulk mail, all for transactional."""
    return stats.bulk_remaining if bulk else stats.remaining


def _reserve(limits: ConnectorLimits, period: Period, bulk: bool) -> int:
    return limits.reserve(period) if bulk else 0
