"""The ledger's monthly partitions under maintenance (shared.partitions, EMAIL_MESSAGES) on the real
PostgreSQL: made ahead, dropped whole past retention once its totals are written, held while a row of
it may still leave."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, Engine, text

from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import OPEN_STATUSES, EmailMessage, MessageMark, MessageStatus
from shared.partitions.maintenance import maintain
from shared.partitions.periods import Grain, months_before
from shared.partitions.tables import EMAIL_MESSAGES, MESSAGE_MARKS, TABLES, PartitionedTable, rolled_up_by
from shared.settings import Settings, load_settings
from tests.send_helpers import add_connector

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
#: The ledger's month of NOW, and a run as of two months on: past a retention of one month.
THIS_MONTH = EMAIL_MESSAGES.partition(Grain.MONTH.start_of(NOW))
LATER = months_before(NOW, -2)


@pytest.fixture
def settings(fresh_database_url: str) -> Settings:
    return load_settings(database_url=fresh_database_url, pilot_ledger_retention_months=1)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings)
    yield engine
    engine.dispose()


class RecordingRollUp:
    """Stands for ``roll_up_ledger``: records the periods it was asked for, and whether the partition
    was still there to be read when it was."""

    def __init__(self) -> None:
        self.calls: list[tuple[datetime, datetime, int]] = []

    def __call__(self, connection: Connection, start: datetime, end: datetime) -> None:
        rows = connection.scalar(
            text("SELECT count(*) FROM email_messages WHERE created_at >= :start AND created_at < :end"),
            {"start": start, "end": end},
        )
        self.calls.append((start, end, int(rows or 0)))


@pytest.fixture
def roll_up() -> RecordingRollUp:
    return RecordingRollUp()


@pytest.fixture
def ledger(roll_up: RecordingRollUp) -> PartitionedTable:
    """The ledger's spec with its totals written by the recording stand-in."""
    return dataclasses.replace(EMAIL_MESSAGES, before_drop=rolled_up_by(roll_up))


def add_rows(engine: Engine, *statuses: MessageStatus) -> None:
    """Ledger rows written now, each with its mark."""
    factory = make_sessionmaker(engine)
    organization, connector = add_connector(factory)
    with transaction(factory) as session:
        for n, status in enumerate(statuses):
            row = EmailMessage(
                organization_id=organization,
                connector_id=connector,
                idempotency_key=f"retention/{n}",
                recipient=f"r{n}@x.test",
                status=status,
                created_at=NOW,
            )
            session.add(row)
            session.flush()
            session.add(MessageMark(message_id=row.id, message_created_at=NOW, kinds=1))


def marks(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text("SELECT count(*) FROM message_marks")) or 0)


def ledger_keys(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.scalars(text("SELECT idempotency_key FROM email_messages")))


def test_the_ledger_is_a_table_maintenance_visits() -> None:
    assert EMAIL_MESSAGES in TABLES
    assert (EMAIL_MESSAGES.column, EMAIL_MESSAGES.grain) == ("created_at", Grain.MONTH)


def test_maintenance_creates_the_ledgers_months_ahead(
    engine: Engine, settings: Settings, ledger: PartitionedTable
) -> None:
    report = maintain(engine, settings, now=LATER, tables=[ledger])

    ahead = ledger.partition_name(Grain.MONTH.start_of(months_before(LATER, -ledger.ahead)))
    assert ahead in report.created
    with engine.connect() as connection:
        exists = connection.scalar(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": ahead})
    assert exists


def test_a_ledger_month_of_final_rows_is_dropped_past_retention_once_its_totals_are_written(
    engine: Engine, settings: Settings, ledger: PartitionedTable, roll_up: RecordingRollUp
) -> None:
    add_rows(engine, MessageStatus.DELIVERED, MessageStatus.FAILED, MessageStatus.CANCELLED)

    report = maintain(engine, settings, now=LATER, tables=[ledger])

    assert THIS_MONTH.name in report.dropped
    assert roll_up.calls == [(THIS_MONTH.start, THIS_MONTH.end, 3)]
    assert ledger_keys(engine) == set()


@pytest.mark.parametrize("status", sorted(OPEN_STATUSES))
def test_a_ledger_month_holding_a_row_that_may_still_leave_is_held(
    engine: Engine,
    settings: Settings,
    ledger: PartitionedTable,
    roll_up: RecordingRollUp,
    status: MessageStatus,
) -> None:
    add_rows(engine, MessageStatus.DELIVERED, status)

    report = maintain(engine, settings, now=LATER, tables=[ledger])

    assert THIS_MONTH.name in report.held
    assert roll_up.calls == []
    assert ledger_keys(engine) == {"retention/0", "retention/1"}


def test_a_ledger_month_within_retention_is_kept(
    engine: Engine, settings: Settings, ledger: PartitionedTable, roll_up: RecordingRollUp
) -> None:
    add_rows(engine, MessageStatus.DELIVERED)

    report = maintain(engine, settings, now=months_before(NOW, -1), tables=[ledger])

    assert THIS_MONTH.name not in report.dropped + report.held
    assert ledger_keys(engine) == {"retention/0"}


def test_a_month_of_marks_is_dropped_with_its_ledger_month(
    engine: Engine, settings: Settings, ledger: PartitionedTable
) -> None:
    add_rows(engine, MessageStatus.DELIVERED, MessageStatus.BOUNCED)

    report = maintain(engine, settings, now=LATER, tables=[ledger, MESSAGE_MARKS])

    assert {THIS_MONTH.name, MESSAGE_MARKS.partition_name(THIS_MONTH.start)} <= set(report.dropped)
    assert marks(engine) == 0


def test_the_marks_of_a_held_ledger_month_are_held_with_it(
    engine: Engine, settings: Settings, ledger: PartitionedTable
) -> None:
    add_rows(engine, MessageStatus.DELIVERED, MessageStatus.QUEUED)

    report = maintain(engine, settings, now=LATER, tables=[ledger, MESSAGE_MARKS])

    assert MESSAGE_MARKS.partition_name(THIS_MONTH.start) in report.held
    assert marks(engine) == 2
