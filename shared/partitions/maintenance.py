"""Partition maintenance, run by beat every hour: create each table's partitions up to ``ahead``
periods beyond now, and drop those past retention (rolled up first where the table says so).

Idempotent and safe to run twice at once: each step re-reads the partitions under the table's
advisory lock. A missed run costs nothing: the next one creates every period after the newest
partition, moving the rows the default partition caught meanwhile into theirs. Rows are never
deleted one by one, except that move out of the catch-all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from psycopg.errors import LockNotAvailable
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from shared.partitions.tables import TABLES, PartitionedTable
from shared.settings import Settings

logger = logging.getLogger(__name__)

#: First key of the advisory locks (the second is the table's); no other lock uses this first key.
LOCK_NAMESPACE = 0x50415254
#: Maintenance gives way to long transactions rather than queue every insert behind its DDL.
LOCK_TIMEOUT = "5s"


@dataclass
class MaintenanceReport:
    """What one run did: partitions created and dropped, and those held (past retention, but still
    holding rows that are needed) or skipped (their table was busy: the next run retries)."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def maintain(
    engine: Engine, settings: Settings, *, now: datetime, tables: Sequence[PartitionedTable] = TABLES
) -> MaintenanceReport:
    """Create the missing partitions of ``tables`` and drop the ones past retention, as of ``now``."""
    report = MaintenanceReport()
    for table in tables:
        try:
            _create_missing(engine, table, now, report)
            _drop_expired(engine, table, settings, now, report)
        except OperationalError as exc:
            if not isinstance(exc.orig, LockNotAvailable):
                raise
            logger.warning("partition maintenance of %s skipped: the table is busy", table.name)
            report.skipped.append(table.name)
    return report


def partitions(connection: Connection, table: PartitionedTable) -> dict[datetime, str]:
    """The partitions of ``table`` by the start of their period (the default one is not listed)."""
    names = connection.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass(:table)"
        ),
        {"table": table.name},
    )
    found = {table.start_of_partition(name): name for name in names}
    return {start: name for start, name in found.items() if start is not None}


def missing_periods(table: PartitionedTable, existing: Sequence[datetime], now: datetime) -> list[datetime]:
    """The periods to create: from the current one (or the one after the newest partition, when that
    is older) to ``ahead`` periods beyond now, those without a partition."""
    current = table.grain.start_of(now)
    first = min(current, table.grain.after(max(existing))) if existing else current
    last = current
    for _ in range(table.ahead):
        last = table.grain.after(last)
    return [start for start in _periods(table, first, last) if start not in existing]


def _periods(table: PartitionedTable, first: datetime, last: datetime) -> Iterator[datetime]:
    start = first
    while start <= last:
        yield start
        start = table.grain.after(start)


def _create_missing(
    engine: Engine, table: PartitionedTable, now: datetime, report: MaintenanceReport
) -> None:
    with engine.begin() as connection:
        _lock(connection, table)
        for start in missing_periods(table, list(partitions(connection, table)), now):
            _create(connection, table, start)
            report.created.append(table.partition_name(start))
            logger.info("partition %s created", table.partition_name(start))


def _create(connection: Connection, table: PartitionedTable, start: datetime) -> None:
    # Built beside the table and attached: the rows moved out of the default partition fire no
    # trigger, and attaching locks the parent far less than CREATE ... PARTITION OF.
    name, end = table.partition(start).name, table.grain.after(start)
    in_range = f"{table.column} >= :start AND {table.column} < :end"
    bounds = {"start": start, "end": end}
    connection.execute(
        text(f"CREATE TABLE {name} (LIKE {table.name} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    )
    moved = connection.execute(
        text(f"INSERT INTO {name} SELECT * FROM {table.default_partition} WHERE {in_range}"), bounds
    ).rowcount
    if moved:
        connection.execute(text(f"DELETE FROM {table.default_partition} WHERE {in_range}"), bounds)
        logger.warning("partition %s: %d rows moved out of %s", name, moved, table.default_partition)
    connection.execute(
        text(
            f"ALTER TABLE {table.name} ATTACH PARTITION {name}"
            f" FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
    )


def _drop_expired(
    engine: Engine, table: PartitionedTable, settings: Settings, now: datetime, report: MaintenanceReport
) -> None:
    cutoff = table.cutoff(settings, now)
    with engine.connect() as connection:
        existing = partitions(connection, table)
    for start in sorted(existing):
        partition = table.partition(start)
        if partition.end > cutoff:
            break
        with engine.begin() as connection:
            _lock(connection, table)
            if partitions(connection, table).get(start) != partition.name:
                continue  # another run dropped it
            # No row may arrive in it (nor change in it) between the checks and the drop.
            connection.execute(text(f"LOCK TABLE {partition.name} IN SHARE MODE"))
            if table.droppable is not None and not table.droppable(connection, partition, settings, now):
                report.held.append(partition.name)
                logger.warning("partition %s is past retention but still holds rows needed", partition.name)
                continue
            if table.before_drop is not None:
                table.before_drop(connection, partition, now)
            connection.execute(text(f"DROP TABLE {partition.name}"))
            report.dropped.append(partition.name)
            logger.info("partition %s dropped (retention)", partition.name)


def _lock(connection: Connection, table: PartitionedTable) -> None:
    connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    connection.execute(
        text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:table))"),
        {"namespace": LOCK_NAMESPACE, "table": table.name},
    )
