"""Partition maintenance and retention (shared.partitions) on the real PostgreSQL: partitions ahead,
after a missed run and under two runs at once; what retention drops, keeps and rolls up."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import (
    OPEN_STATUSES,
    EmailMessage,
    EmailRequest,
    MessageStatus,
    Suppression,
    SuppressionReason,
)
from shared.partitions.maintenance import MaintenanceReport, maintain
from shared.partitions.periods import Grain, months_before
from shared.partitions.tables import EMAIL_METRICS, EMAIL_REQUESTS, WEBHOOK_EVENTS
from shared.settings import Settings, load_settings
from tests.send_helpers import add_connector

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
DAY = timedelta(days=1)


@pytest.fixture
def settings(fresh_database_url: str) -> Settings:
    # Metrics kept 2 months, not 13: a run as of after their retention makes every daily partition of
    # the days between, and fewer days keep each test to a second or two.
    return load_settings(database_url=fresh_database_url, pilot_metrics_retention_months=2)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings)
    yield engine
    engine.dispose()


def partition_names(engine: Engine, table: str) -> set[str]:
    with engine.connect() as connection:
        return set(
            connection.scalars(
                text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " WHERE i.inhparent = to_regclass(:table)"
                ),
                {"table": table},
            )
        )


def day_partition(moment: datetime) -> str:
    return WEBHOOK_EVENTS.partition_name(Grain.DAY.start_of(moment))


def month_partition(moment: datetime) -> str:
    return EMAIL_METRICS.partition_name(Grain.MONTH.start_of(moment))


def add_event(engine: Engine, occurred_at: datetime, processed_at: datetime | None) -> uuid.UUID:
    with engine.begin() as connection:
        return connection.execute(
            text(
                "INSERT INTO webhook_events (svix_id, type, payload, occurred_at, processed_at)"
                " VALUES (:svix, 'email.delivered', '{}', :at, :processed) RETURNING id"
            ),
            {"svix": f"msg_{uuid.uuid4().hex}", "at": occurred_at, "processed": processed_at},
        ).scalar_one()


def partition_of(engine: Engine, table: str, row_id: uuid.UUID) -> str | None:
    with engine.connect() as connection:
        return connection.scalar(
            text(f"SELECT tableoid::regclass::text FROM {table} WHERE id = :id"), {"id": row_id}
        )


def test_maintenance_creates_the_partitions_ahead_of_now(engine: Engine, settings: Settings) -> None:
    later = NOW + 10 * DAY

    maintain(engine, settings, now=later)

    days = {day_partition(later + n * DAY) for n in range(WEBHOOK_EVENTS.ahead + 1)}
    assert days <= partition_names(engine, "webhook_events")
    assert month_partition(months_before(later, -EMAIL_METRICS.ahead)) in partition_names(
        engine, "email_metrics"
    )


def test_maintenance_run_again_changes_nothing(engine: Engine, settings: Settings) -> None:
    maintain(engine, settings, now=NOW + 5 * DAY)
    before = partition_names(engine, "webhook_events")

    report = maintain(engine, settings, now=NOW + 5 * DAY)

    assert report == MaintenanceReport()
    assert partition_names(engine, "webhook_events") == before


def test_a_missed_run_creates_every_missing_partition_and_moves_the_rows_caught_meanwhile(
    engine: Engine, settings: Settings
) -> None:
    # Beat was down: an event lands beyond the partitions made ahead, in the default partition.
    late = NOW + 9 * DAY
    event = add_event(engine, late, processed_at=None)
    assert partition_of(engine, "webhook_events", event) == "webhook_events_default"

    maintain(engine, settings, now=late)

    expected = {day_partition(NOW + n * DAY) for n in range(9 + WEBHOOK_EVENTS.ahead + 1)}
    assert expected <= partition_names(engine, "webhook_events")
    assert partition_of(engine, "webhook_events", event) == day_partition(late)


def test_two_runs_at_once_create_each_partition_once(engine: Engine, settings: Settings) -> None:
    reports: list[MaintenanceReport] = []
    runs = [
        threading.Thread(target=lambda: reports.append(maintain(engine, settings, now=NOW + 30 * DAY)))
        for _ in range(2)
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join()

    created = [name for report in reports for name in report.created]
    assert len(reports) == 2
    assert len(created) == len(set(created)) > 0
    assert day_partition(NOW + 33 * DAY) in partition_names(engine, "webhook_events")


def test_an_events_partition_past_retention_is_dropped_once_its_events_are_applied(
    engine: Engine, settings: Settings
) -> None:
    add_event(engine, NOW, processed_at=NOW)
    later = NOW + (settings.pilot_webhook_body_retention_days + 2) * DAY

    report = maintain(engine, settings, now=later)

    assert day_partition(NOW) in report.dropped
    assert day_partition(NOW) not in partition_names(engine, "webhook_events")


def test_an_events_partition_holding_an_unapplied_event_is_kept(engine: Engine, settings: Settings) -> None:
    waiting = add_event(engine, NOW, processed_at=None)
    later = NOW + (settings.pilot_webhook_body_retention_days + 30) * DAY

    report = maintain(engine, settings, now=later)

    assert day_partition(NOW) in report.held
    assert partition_of(engine, "webhook_events", waiting) == day_partition(NOW)


def test_an_events_partition_with_an_event_applied_within_retention_is_kept(
    engine: Engine, settings: Settings
) -> None:
    later = NOW + (settings.pilot_webhook_body_retention_days + 2) * DAY
    replayed = add_event(engine, NOW, processed_at=later - DAY)

    report = maintain(engine, settings, now=later)

    assert day_partition(NOW) in report.held
    assert partition_of(engine, "webhook_events", replayed) == day_partition(NOW)


def test_undated_events_stay_in_the_default_partition_whatever_retention_says(
    engine: Engine, settings: Settings
) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO webhook_events (svix_id, type, payload, processed_at)"
                " VALUES ('undated', 't', '{}', :t)"
            ),
            {"t": NOW},
        )

    maintain(engine, settings, now=NOW + 10 * settings.pilot_webhook_body_retention_days * DAY)

    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM webhook_events_default")) == 1


def _add_metrics(engine: Engine) -> tuple[uuid.UUID, uuid.UUID, list[dict[str, object]]]:
    """Metrics of two tasks of one connector this month (some emails with several events)."""
    factory = make_sessionmaker(engine)
    organization, connector = add_connector(factory)
    rows: list[dict[str, object]] = []
    with engine.begin() as connection:
        tasks = [
            connection.execute(
                text("INSERT INTO tasks (organization_id) VALUES (:org) RETURNING id"), {"org": organization}
            ).scalar_one()
            for _ in range(2)
        ]
        for number in range(12):
            task = tasks[number % 2]
            message = connection.execute(
                text(
                    "INSERT INTO email_messages (organization_id, connector_id, task_id, idempotency_key,"
                    " recipient, status) VALUES (:org, :conn, :task, :key, :to, 'delivered') RETURNING id"
                ),
                {
                    "org": organization,
                    "conn": connector,
                    "task": task,
                    "key": f"k{number}",
                    "to": f"r{number}@x.test",
                },
            ).scalar_one()
            for event in ("delivered", "opened", "opened")[: 1 + number % 3]:
                row = {"message": message, "task": task, "conn": connector, "event": event, "at": NOW}
                connection.execute(
                    text(
                        "INSERT INTO email_metrics (message_id, task_id, connector_id, event, occurred_at)"
                        " VALUES (:message, :task, :conn, :event, :at)"
                    ),
                    row,
                )
                rows.append(row)
    return tasks[0], connector, rows


def _rollups(engine: Engine, scope_id: uuid.UUID) -> tuple[Counter[str], Counter[str]]:
    with engine.connect() as connection:
        found = connection.execute(
            text("SELECT event, events, messages FROM metric_rollups WHERE scope_id = :id AND day = :day"),
            {"id": scope_id, "day": NOW.date()},
        ).all()
    return Counter({e: n for e, n, _ in found}), Counter({e: m for e, _, m in found})


def test_a_metrics_partition_past_retention_is_dropped_and_its_rollups_equal_its_totals(
    engine: Engine, settings: Settings
) -> None:
    task, connector, rows = _add_metrics(engine)
    later = months_before(NOW, -(settings.pilot_metrics_retention_months + 1))

    report = maintain(engine, settings, now=later)

    assert month_partition(NOW) in report.dropped
    task_events, task_messages = _rollups(engine, task)
    assert task_events == Counter(str(row["event"]) for row in rows if row["task"] == task)
    assert task_messages == Counter(
        {e: len({r["message"] for r in rows if r["task"] == task and r["event"] == e}) for e in task_events}
    )
    connector_events, _ = _rollups(engine, connector)
    assert connector_events == Counter(str(row["event"]) for row in rows)


def _add_sends(engine: Engine, statuses: dict[str, MessageStatus]) -> None:
    """Ledger rows written now, each with its request body, and a suppression entry."""
    factory = make_sessionmaker(engine)
    organization, connector = add_connector(factory)
    with transaction(factory) as session:
        session.add(
            Suppression(
                organization_id=organization, email="gone@x.test", reason=SuppressionReason.HARD_BOUNCE
            )
        )
        for key, status in statuses.items():
            row = EmailMessage(
                organization_id=organization,
                connector_id=connector,
                idempotency_key=key,
                recipient=f"{key}@x.test",
                status=status,
                created_at=NOW,
            )
            session.add(row)
            session.flush()
            session.add(EmailRequest(message_id=row.id, stored_at=NOW, request={"subject": key}))


def _bodies_and_rows(engine: Engine) -> tuple[set[str], set[str], int]:
    with engine.connect() as connection:
        bodies = set(connection.scalars(text("SELECT request ->> 'subject' FROM email_requests")))
        rows = set(connection.scalars(text("SELECT idempotency_key FROM email_messages")))
        suppressions = connection.scalar(text("SELECT count(*) FROM suppression_list")) or 0
    return bodies, rows, suppressions


def test_request_bodies_of_a_day_of_final_rows_are_dropped_past_their_retry_window(
    engine: Engine, settings: Settings
) -> None:
    _add_sends(engine, {"delivered": MessageStatus.DELIVERED, "failed": MessageStatus.FAILED})
    later = NOW + DAY + timedelta(hours=settings.pilot_request_body_retention_hours)

    report = maintain(engine, settings, now=later)

    assert EMAIL_REQUESTS.partition_name(Grain.DAY.start_of(NOW)) in report.dropped
    assert _bodies_and_rows(engine) == (set(), {"delivered", "failed"}, 1)


def test_request_bodies_of_rows_that_may_still_leave_are_carried_on_when_their_day_is_dropped(
    engine: Engine, settings: Settings
) -> None:
    statuses = {status.value: status for status in OPEN_STATUSES} | {"sent": MessageStatus.SENT}
    _add_sends(engine, statuses)
    later = NOW + 30 * DAY

    report = maintain(engine, settings, now=later)

    assert EMAIL_REQUESTS.partition_name(Grain.DAY.start_of(NOW)) in report.dropped
    assert _bodies_and_rows(engine) == ({status.value for status in OPEN_STATUSES}, set(statuses), 1)
    with engine.connect() as connection:
        carried_to = set(connection.scalars(text("SELECT tableoid::regclass::text FROM email_requests")))
    assert carried_to == {EMAIL_REQUESTS.partition_name(Grain.DAY.start_of(later))}


def test_retention_never_drops_suppressions_nor_ledger_rows(engine: Engine, settings: Settings) -> None:
    _add_sends(engine, {"queued": MessageStatus.QUEUED, "sent": MessageStatus.SENT})

    maintain(engine, settings, now=months_before(NOW, -(settings.pilot_metrics_retention_months + 2)))

    assert _bodies_and_rows(engine)[1:] == ({"queued", "sent"}, 1)


def test_a_partition_made_by_maintenance_keeps_one_row_per_event_and_the_outcome_trigger(
    engine: Engine, settings: Settings
) -> None:
    later = NOW + 40 * DAY
    maintain(engine, settings, now=later)
    insert = text(
        "INSERT INTO webhook_events (svix_id, type, payload, occurred_at) VALUES ('same', 't', '{}', :at)"
        " ON CONFLICT (svix_id, occurred_at) DO NOTHING RETURNING id"
    )
    with engine.begin() as connection:
        first = connection.scalar(insert, {"at": later})
        second = connection.scalar(insert, {"at": later})
        triggers = connection.scalar(
            text("SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass(:p) AND NOT tgisinternal"),
            {"p": month_partition(later)},
        )

    assert first is not None and second is None
    assert triggers == 1
