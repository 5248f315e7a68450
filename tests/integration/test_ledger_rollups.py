"""The ledger's daily rollups (shared.partitions.ledger_rollups) on the real PostgreSQL: each day's
rollups are the count of its ledger rows, rewritten whole by a rerun, other days left alone."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, text

from shared.db import make_engine, make_sessionmaker
from shared.errors import PayloadInvalid
from shared.models import MessageStatus
from shared.partitions.ledger_rollups import roll_up_ledger, roll_up_partition, totals
from shared.partitions.tables import Partition
from shared.settings import load_settings
from worker.beat import tasks as beat_tasks

pytestmark = pytest.mark.integration

DAY = timedelta(days=1)
#: The days the ledger holds rows of: two before and one after the three the tests roll up.
FIRST = datetime(2026, 11, 10, tzinfo=UTC)
DAYS = [FIRST + n * DAY for n in range(6)]
ROLLED = DAYS[2:5]
#: Moments of a day its rows are created at: both of its edges, and a time written in another zone.
MOMENTS = [
    timedelta(0),
    timedelta(hours=9, minutes=30),
    timedelta(hours=23, minutes=59, seconds=59, microseconds=999_999),
]
Key = tuple[date, uuid.UUID, uuid.UUID, uuid.UUID | None, str]


@pytest.fixture
def engine(fresh_database_url: str) -> Iterator[Engine]:
    engine = make_engine(load_settings(database_url=fresh_database_url))
    yield engine
    engine.dispose()


def add_owners(engine: Engine) -> list[tuple[uuid.UUID, list[uuid.UUID], list[uuid.UUID | None]]]:
    """Two organizations, each with two connectors and two tasks: (organization, connectors, tasks
    and ``None`` for single sends)."""
    owners: list[tuple[uuid.UUID, list[uuid.UUID], list[uuid.UUID | None]]] = []
    with engine.begin() as connection:
        for n in range(2):
            org = connection.execute(
                text("INSERT INTO organizations (name) VALUES (:name) RETURNING id"), {"name": f"org {n}"}
            ).scalar_one()
            connectors = [
                connection.execute(
                    text("INSERT INTO connectors (organization_id, name) VALUES (:org, :name) RETURNING id"),
                    {"org": org, "name": f"c{c}"},
                ).scalar_one()
                for c in range(2)
            ]
            tasks: list[uuid.UUID | None] = [
                connection.execute(
                    text("INSERT INTO tasks (organization_id) VALUES (:org) RETURNING id"), {"org": org}
                ).scalar_one()
                for _ in range(2)
            ]
            owners.append((org, connectors, [*tasks, None]))
    return owners


def fill_ledger(engine: Engine) -> list[dict[str, Any]]:
    """Rows of every organization, connector, task (and none), status and day, 1 to 3 of each; the
    rows written."""
    rows = []
    combination = 0
    for org, connectors, tasks in add_owners(engine):
        for connector in connectors:
            for task in tasks:
                for day in DAYS:
                    for status in MessageStatus:
                        combination += 1
                        for n in range(1 + combination % 3):
                            moment = day + MOMENTS[(combination + n) % len(MOMENTS)]
                            rows.append(row(org, connector, task, status, moment))
    insert(engine, rows)
    return rows


def row(
    org: uuid.UUID, connector: uuid.UUID, task: uuid.UUID | None, status: str, created_at: datetime
) -> dict[str, Any]:
    # Written as +02:00 half the time: the day is the UTC one whatever the offset given.
    zone = timezone(timedelta(hours=2)) if created_at.microsecond == 0 else UTC
    return {
        "org": org,
        "connector": connector,
        "task": task,
        "status": status,
        "key": f"rollup/{uuid.uuid4()}",
        "created_at": created_at.astimezone(zone),
    }


def insert(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO email_messages (organization_id, connector_id, task_id, idempotency_key,"
                " recipient, status, created_at)"
                " VALUES (:org, :connector, :task, :key, 'someone@example.test', :status, :created_at)"
            ),
            rows,
        )


def direct_count(rows: list[dict[str, Any]], days: list[datetime]) -> dict[Key, int]:
    """The rows created on ``days`` counted by their UTC day and owners and status."""
    wanted = {day.date() for day in days}
    counted = Counter(
        (r["created_at"].astimezone(UTC).date(), r["org"], r["connector"], r["task"], str(r["status"]))
        for r in rows
    )
    return {key: n for key, n in counted.items() if key[0] in wanted}


def rollups(engine: Engine) -> dict[Key, int]:
    with engine.connect() as connection:
        found = connection.execute(
            text("SELECT day, organization_id, connector_id, task_id, status, emails FROM ledger_rollups")
        )
        return {(r.day, r.organization_id, r.connector_id, r.task_id, r.status): r.emails for r in found}


def roll_up(engine: Engine, start: datetime, end: datetime) -> None:
    with engine.begin() as connection:
        roll_up_ledger(connection, start, end)


def set_status(engine: Engine, key: str, status: MessageStatus) -> None:
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE email_messages SET status = :status WHERE idempotency_key = :key"),
            {"status": status, "key": key},
        )


def test_the_rollups_of_days_are_the_count_of_their_ledger_rows(engine: Engine) -> None:
    rows = fill_ledger(engine)

    roll_up(engine, ROLLED[0], ROLLED[-1] + DAY)

    assert rollups(engine) == direct_count(rows, ROLLED)


def test_a_rerun_gives_the_same_rollups(engine: Engine) -> None:
    fill_ledger(engine)
    roll_up(engine, ROLLED[0], ROLLED[-1] + DAY)
    before = rollups(engine)

    roll_up(engine, ROLLED[0], ROLLED[-1] + DAY)

    assert rollups(engine) == before


def test_a_status_changed_after_its_day_moves_the_count_at_the_next_rollup(engine: Engine) -> None:
    rows = fill_ledger(engine)
    roll_up(engine, ROLLED[0], ROLLED[-1] + DAY)
    sent = next(r for r in rows if r["created_at"] >= ROLLED[1] and r["status"] == MessageStatus.SENT)
    set_status(engine, sent["key"], MessageStatus.COMPLAINED)
    sent["status"] = MessageStatus.COMPLAINED

    roll_up(engine, ROLLED[1], ROLLED[1] + DAY)

    assert rollups(engine) == direct_count(rows, ROLLED)


def test_a_key_whose_last_row_changed_status_leaves_the_rollups(engine: Engine) -> None:
    [(org, [connector, _], [task, *_])] = add_owners(engine)[:1]
    alone = row(org, connector, task, MessageStatus.SENT, ROLLED[0] + MOMENTS[1])
    insert(engine, [alone])
    roll_up(engine, ROLLED[0], ROLLED[0] + DAY)
    set_status(engine, alone["key"], MessageStatus.DELIVERED)

    roll_up(engine, ROLLED[0], ROLLED[0] + DAY)

    assert rollups(engine) == {(ROLLED[0].date(), org, connector, task, MessageStatus.DELIVERED.value): 1}


def test_a_rollup_leaves_other_days_rollups_as_they_are(engine: Engine) -> None:
    rows = fill_ledger(engine)
    roll_up(engine, ROLLED[0], ROLLED[-1] + DAY)
    before = rollups(engine)
    for day in (ROLLED[0], ROLLED[-1]):
        sent = next(r for r in rows if r["created_at"] >= day and r["status"] == MessageStatus.SENT)
        set_status(engine, sent["key"], MessageStatus.BOUNCED)

    roll_up(engine, ROLLED[1], ROLLED[1] + DAY)

    assert rollups(engine) == before


def test_two_rewrites_of_a_day_at_once_take_turns(engine: Engine) -> None:
    rows = fill_ledger(engine)
    errors: list[BaseException] = []

    def second() -> None:
        try:
            roll_up(engine, ROLLED[0], ROLLED[0] + DAY)
        except BaseException as exc:  # reported below
            errors.append(exc)

    with engine.begin() as connection:
        roll_up_ledger(connection, ROLLED[0], ROLLED[0] + DAY)
        other = threading.Thread(target=second)
        other.start()
        other.join(timeout=1)
        assert other.is_alive()  # waiting for the first to commit
    other.join(timeout=30)

    assert not other.is_alive() and errors == []
    assert rollups(engine) == direct_count(rows, ROLLED[:1])


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (ROLLED[0] + timedelta(hours=1), ROLLED[1]),
        (ROLLED[0], ROLLED[1] - timedelta(microseconds=1)),
        (ROLLED[0].replace(tzinfo=None), ROLLED[1].replace(tzinfo=None)),
        (ROLLED[0].replace(tzinfo=timezone(timedelta(hours=2))), ROLLED[1]),
    ],
)
def test_a_rollup_of_part_of_a_day_is_refused(engine: Engine, start: datetime, end: datetime) -> None:
    with pytest.raises(PayloadInvalid, match="whole UTC days"), engine.begin() as connection:
        roll_up_ledger(connection, start, end)


def test_beats_rollup_rewrites_the_two_days_before_today(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = fill_ledger(engine)
    now = ROLLED[-1] + timedelta(minutes=30)
    monkeypatch.setattr(beat_tasks, "context", lambda app: SimpleNamespace(engine=engine, clock=lambda: now))

    rolled = beat_tasks.roll_up_ledger.apply().get()

    assert rolled == [ROLLED[0].date().isoformat(), ROLLED[1].date().isoformat()]
    assert rollups(engine) == direct_count(rows, ROLLED[:2])


def test_the_hook_before_a_ledger_partition_is_dropped_rewrites_the_days_it_holds(engine: Engine) -> None:
    rows = fill_ledger(engine)
    partition = Partition("email_messages_p20261112", ROLLED[0], ROLLED[-1] + DAY)

    with engine.begin() as connection:
        roll_up_partition(connection, partition, datetime.now(UTC))

    assert rollups(engine) == direct_count(rows, ROLLED)


def test_totals_sum_the_rollups_of_the_days_asked_by_status(engine: Engine) -> None:
    rows = fill_ledger(engine)
    roll_up(engine, DAYS[0], DAYS[-1] + DAY)
    expected = Counter[str]()
    for (_, _, _, _, status), n in direct_count(rows, ROLLED).items():
        expected[status] += n

    with make_sessionmaker(engine)() as session:
        found = totals(session, ROLLED[0].date(), ROLLED[-1].date())

    assert found.by_status == {status.value: expected[status.value] for status in MessageStatus}
    assert list(found.by_status) == [status.value for status in MessageStatus]
    assert found.emails == expected.total()
    assert found.rolled_up_at is not None
