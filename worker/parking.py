"""When a row parked for a spent connector budget should come back: after the rows parked before it.

Rows are parked (``deferred`` with ``next_attempt_at``) one task at a time. Parked only until the
buckets hold tokens for *their own* rows, every row parked in the same spell would come back at the
same moment, one would get the next token and all the others would park again: a herd at each
release, and work growing with the square of the backlog. Instead a row waits for the tokens of
every row already parked for later as well, so a backlog comes back at the rate the budget refills.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.models import EmailMessage
from shared.rate_limit import DAY_MS, HOUR_MS, ConnectorLimits, Period, RateLimiter

#: Wait kinds meaning "the connector's email budget is spent" (``Decision.blocked_by`` or ours).
BUDGET_KINDS = frozenset({"hour", "day", "budget"})
_BUCKETS: tuple[tuple[Period, int], ...] = (("hour", HOUR_MS), ("day", DAY_MS))


def parked_ahead(session: Session, connector_id: uuid.UUID, moment: datetime) -> int:
    """The connector's rows parked until after ``moment``: they take tokens before rows parked now."""
    query = select(func.count()).where(
        EmailMessage.connector_id == connector_id,
        EmailMessage.status == "deferred",
        EmailMessage.next_attempt_at > moment,
    )
    return int(session.scalar(query) or 0)


def backlog_wait(limiter: RateLimiter, connector_id: uuid.UUID, limits: ConnectorLimits, count: int) -> float:
    """Seconds until the hour and the day buckets will have given ``count`` more tokens than they
    hold now. ``count`` may exceed a bucket's capacity: it is a queue, taken over several refills."""
    waits = [0.0]
    for period, period_ms in _BUCKETS:
        stats = limiter.get_usage_stats(connector_id, period, limits)
        missing = count - stats.remaining
        waits.append(max(0, missing) * period_ms / 1000 / stats.limit)
    return max(waits)


def parking_seconds(
    session: Session,
    limiter: RateLimiter,
    connector_id: uuid.UUID,
    limits: ConnectorLimits,
    *,
    count: int,
    seconds: float,
    moment: datetime,
) -> float:
    """How long to park ``count`` rows a budget wait of ``seconds`` stopped: behind the queue."""
    ahead = parked_ahead(session, connector_id, moment)
    if not ahead:
        return seconds
    return max(seconds, backlog_wait(limiter, connector_id, limits, ahead + count))
