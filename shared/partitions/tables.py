"""Which tables are partitioned by time, at what grain, and when a partition may go.

``email_metrics`` by month (13 kept); ``webhook_events`` by day (14 days after they are applied);
``email_requests`` by day (24 hours after the day, open rows' bodies carried on); ``email_messages``, the
ledger, by month (13, none of its rows open, its totals written first); ``message_marks`` with its ledger
month; ``outcome_events``, the outbox, by day (7 days after they are published). docs/architecture.md §13.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from shared.models import OPEN_STATUSES
from shared.partitions.ledger_rollups import roll_up_ledger
from shared.partitions.periods import Grain, months_before
from shared.partitions.rollups import roll_up_metrics
from shared.settings import Settings


@dataclass(frozen=True)
class Partition:
    """One partition: its name and the period it holds, ``[start, end)``."""

    name: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class PartitionedTable:
    """A table partitioned by range of ``column``, one partition per ``grain``, ``ahead`` periods
    created beyond the current one. A partition whose end is at or before ``cutoff`` may go, once
    ``droppable`` agrees (when given); ``before_drop`` runs in the dropping transaction (given the
    time of the run)."""

    name: str
    column: str
    grain: Grain
    ahead: int
    cutoff: Callable[[Settings, datetime], datetime]
    droppable: Callable[[Connection, Partition, Settings, datetime], bool] | None = None
    before_drop: Callable[[Connection, Partition, datetime], None] | None = None

    @property
    def default_partition(self) -> str:
        """The catch-all partition: rows outside every period (undated, late, or far ahead)."""
        return f"{self.name}_default"

    def partition(self, start: datetime) -> Partition:
        """The partition of the period starting at ``start``."""
        return Partition(f"{self.name}_p{self.grain.suffix(start)}", start, self.grain.after(start))

    def partition_name(self, start: datetime) -> str:
        """The name of the partition of the period starting at ``start``."""
        return self.partition(start).name

    def start_of_partition(self, name: str) -> datetime | None:
        """The start of the period partition ``name`` holds; ``None`` for a name not ours."""
        prefix = f"{self.name}_p"
        return self.grain.parse(name.removeprefix(prefix)) if name.startswith(prefix) else None


def _all_done_before(connection: Connection, partition: Partition, done_at: str, since: datetime) -> bool:
    """Whether every row of ``partition`` has ``done_at`` set, and none after ``since``. A row not done
    yet keeps its partition, however old: asked apart from the recent ones so that the table's partial
    index of rows not done answers it."""
    pending = text(f"SELECT EXISTS (SELECT FROM {partition.name} WHERE {done_at} IS NULL)")
    if connection.execute(pending).scalar():
        return False
    return not connection.execute(
        text(f"SELECT EXISTS (SELECT FROM {partition.name} WHERE {done_at} > :since)"), {"since": since}
    ).scalar()


def _events_applied_long_ago(
    connection: Connection, partition: Partition, settings: Settings, now: datetime
) -> bool:
    # An event not applied yet (waiting or failing) is kept.
    since = now - timedelta(days=settings.pilot_webhook_body_retention_days)
    return _all_done_before(connection, partition, "processed_at", since)


def _events_published_long_ago(
    connection: Connection, partition: Partition, settings: Settings, now: datetime
) -> bool:
    # An event not published yet (the broker away) is kept.
    since = now - timedelta(days=settings.pilot_outcome_events_retention_days)
    return _all_done_before(connection, partition, "published_at", since)


#: The bodies of a partition whose row may still leave (scheduled, queued, deferred, or sending: its
#: outcome unknown, within its retry window), found from the open rows: few, and one select per
#: status so that each is answered by that status's index.
_CARRY_OPEN_BODIES = """
INSERT INTO email_requests (message_id, stored_at, request)
SELECT r.message_id, :now, r.request FROM {partition} r
WHERE r.message_id IN ({open_rows})
"""
_OPEN_ROWS = " UNION ALL ".join(
    f"SELECT id FROM email_messages WHERE status = '{status.value}'" for status in sorted(OPEN_STATUSES)
)


def carry_open_bodies(connection: Connection, partition: Partition, now: datetime) -> None:
    """Copy the bodies in ``partition`` that an open row still needs into the partition of ``now``
    (the old copies go with the partition in the same transaction: one body per row is ever seen)."""
    statement = text(_CARRY_OPEN_BODIES.format(partition=partition.name, open_rows=_OPEN_ROWS))
    connection.execute(statement, {"now": now})


def no_open_rows(connection: Connection, partition: Partition, settings: Settings, now: datetime) -> bool:
    """Whether no row of the ledger partition ``partition`` may still leave (``OPEN_STATUSES``): one
    look per status, each answered by that status's partial index."""
    for status in sorted(OPEN_STATUSES):
        found = text(f"SELECT EXISTS (SELECT FROM {partition.name} WHERE status = '{status.value}')")
        if connection.execute(found).scalar():
            return False
    return True


RollUp = Callable[[Connection, datetime, datetime], None]


def rolled_up_by(roll_up: RollUp) -> Callable[[Connection, Partition, datetime], None]:
    """A ``before_drop`` hook that has ``roll_up`` write the totals of the partition's period."""

    def before_drop(connection: Connection, partition: Partition, now: datetime) -> None:
        roll_up(connection, partition.start, partition.end)

    return before_drop


WEBHOOK_EVENTS = PartitionedTable(
    name="webhook_events",
    column="occurred_at",
    grain=Grain.DAY,
    ahead=3,
    cutoff=lambda settings, now: now - timedelta(days=settings.pilot_webhook_body_retention_days),
    droppable=_events_applied_long_ago,
)
EMAIL_METRICS = PartitionedTable(
    name="email_metrics",
    column="occurred_at",
    grain=Grain.MONTH,
    ahead=1,
    cutoff=lambda settings, now: months_before(now, settings.pilot_metrics_retention_months),
    before_drop=roll_up_metrics,
)
EMAIL_REQUESTS = PartitionedTable(
    name="email_requests",
    column="stored_at",
    grain=Grain.DAY,
    ahead=3,
    cutoff=lambda settings, now: now - timedelta(hours=settings.pilot_request_body_retention_hours),
    before_drop=carry_open_bodies,
)
EMAIL_MESSAGES = PartitionedTable(
    name="email_messages",
    column="created_at",
    grain=Grain.MONTH,
    ahead=1,
    cutoff=lambda settings, now: months_before(now, settings.pilot_ledger_retention_months),
    droppable=no_open_rows,
    before_drop=rolled_up_by(roll_up_ledger),
)


def ledger_month_gone(
    connection: Connection, partition: Partition, settings: Settings, now: datetime
) -> bool:
    """Whether the ledger's partition of the period of ``partition`` is gone (a month of marks goes
    with its month of ledger rows, never before: a held ledger month holds its marks)."""
    ledger_partition = EMAIL_MESSAGES.partition_name(partition.start)
    return not connection.execute(
        text("SELECT to_regclass(:name) IS NOT NULL"), {"name": ledger_partition}
    ).scalar()


MESSAGE_MARKS = PartitionedTable(
    name="message_marks",
    column="message_created_at",
    grain=Grain.MONTH,
    ahead=1,
    cutoff=EMAIL_MESSAGES.cutoff,
    droppable=ledger_month_gone,
)
OUTCOME_EVENTS = PartitionedTable(
    name="outcome_events",
    column="created_at",
    grain=Grain.DAY,
    ahead=3,
    cutoff=lambda settings, now: now - timedelta(days=settings.pilot_outcome_events_retention_days),
    droppable=_events_published_long_ago,
)
#: Every partitioned table, in the order maintenance visits them (the ledger before its marks, so
#: that one run drops both).
TABLES = (WEBHOOK_EVENTS, EMAIL_METRICS, EMAIL_REQUESTS, EMAIL_MESSAGES, MESSAGE_MARKS, OUTCOME_EVENTS)
