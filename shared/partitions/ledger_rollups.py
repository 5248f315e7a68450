"""Daily totals of the send ledger (``ledger_rollups``): emails created each UTC day by organization,
connector, task and status, rewritten from the ledger's rows, so they outlive the rows retention drops.

Beat rewrites the last finished days (``pilot.roll_up_ledger``); retention rewrites a partition's days
once more just before it drops them, so a day's figures end as its rows' final statuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from shared.errors import PayloadInvalid
from shared.models import MessageStatus
from shared.partitions.periods import Grain

if TYPE_CHECKING:
    from shared.partitions.tables import Partition

#: The advisory lock (first and second key) that makes rewrites take turns: two rewrites of one day
#: at once would both insert its rows. No other lock uses this first key.
LOCK_NAMESPACE = 0x4C524F4C
LOCK_KEY = 1
#: Beat rewrites this many finished days each night: yesterday, whose last emails are still being
#: delivered at midnight, and the day before, settled by then; a missed night is made good for the
#: older day by the next.
RECENT_DAYS = 2

_DELETE = text("DELETE FROM ledger_rollups WHERE day >= :first AND day < :last")
# Bounded by created_at so that the block range index (or a partition's bounds) narrows the read to
# the days asked; the day of each row is its UTC date.
_INSERT = text("""
INSERT INTO ledger_rollups (day, organization_id, connector_id, task_id, status, emails)
SELECT (created_at AT TIME ZONE 'UTC')::date, organization_id, connector_id, task_id, status, count(*)
FROM email_messages
WHERE created_at >= :start AND created_at < :end
GROUP BY 1, organization_id, connector_id, task_id, status
""")


def roll_up_ledger(connection: Connection, start: datetime, end: datetime) -> None:
    """Rewrite the rollups of every UTC day in ``[start, end)`` (UTC midnights) from the ledger rows
    created those days, in the caller's transaction: a rerun gives the same rows, and a day whose rows
    changed status since gives their new statuses. Other days' rollups are left as they are."""
    for bound in (start, end):
        # A partial day would be rewritten from part of its rows.
        if bound.tzinfo is None or bound.astimezone(UTC).timetz() != time(tzinfo=UTC):
            raise PayloadInvalid(f"a ledger rollup covers whole UTC days, not from or to {bound.isoformat()}")
    if end <= start:
        return
    connection.execute(
        text("SELECT pg_advisory_xact_lock(:namespace, :key)"), {"namespace": LOCK_NAMESPACE, "key": LOCK_KEY}
    )
    days = {"first": start.astimezone(UTC).date(), "last": end.astimezone(UTC).date()}
    connection.execute(_DELETE, days)
    connection.execute(_INSERT, {"start": start, "end": end})


def roll_up_partition(connection: Connection, partition: Partition, now: datetime) -> None:
    """The ``before_drop`` hook of a ledger partitioned by time: rewrite its days' rollups once more
    from its rows' final statuses, in the dropping transaction. ``now`` is not needed."""
    roll_up_ledger(connection, partition.start, partition.end)


def finished_days(now: datetime, days: int = RECENT_DAYS) -> list[datetime]:
    """The starts (UTC midnights) of the ``days`` whole days before the one holding ``now``, oldest first."""
    today = Grain.DAY.start_of(now)
    return [today - timedelta(days=back) for back in range(days, 0, -1)]


def roll_up_recent(engine: Engine, now: datetime, days: int = RECENT_DAYS) -> list[date]:
    """Rewrite the rollups of the last ``days`` finished days; the days rewritten."""
    starts = finished_days(now, days)
    return roll_up_days(engine, starts[0].date(), starts[-1].date()) if starts else []


def roll_up_days(engine: Engine, first: date, last: date) -> list[date]:
    """Rewrite the rollups of the days ``first`` to ``last`` (inclusive), one transaction per day (a
    day's figures appear whole or not at all, and no transaction holds many days); the days rewritten."""
    rolled = []
    day = first
    while day <= last:
        start = datetime.combine(day, time(), tzinfo=UTC)
        with engine.begin() as connection:
            roll_up_ledger(connection, start, Grain.DAY.after(start))
        rolled.append(day)
        day += timedelta(days=1)
    return rolled


@dataclass(frozen=True)
class LedgerTotals:
    """Emails created on the days ``first`` to ``last`` (inclusive) by status, as their days were
    last rolled up: ``rolled_up_at`` is the latest rewrite among them (``None``: none rolled up)."""

    first: date
    last: date
    by_status: dict[str, int]
    rolled_up_at: datetime | None

    @property
    def emails(self) -> int:
        """Every email of the period, whatever its status."""
        return sum(self.by_status.values())


_TOTALS = text("""
SELECT status, sum(emails), max(rolled_up_at) FROM ledger_rollups
WHERE day >= :first AND day <= :last GROUP BY status
""")


def totals(session: Session, first: date, last: date) -> LedgerTotals:
    """The rollups of the days ``first`` to ``last`` summed by status (statuses in their enum order):
    read from the rollups' key by day, whatever the ledger's size."""
    rows = session.execute(_TOTALS, {"first": first, "last": last}).all()
    found = {status: int(emails) for status, emails, _ in rows}
    by_status = {status.value: found[status] for status in MessageStatus if status in found}
    rolled_up_at = max((row[2] for row in rows), default=None)
    return LedgerTotals(first, last, by_status, rolled_up_at)
