"""``ledger.recent_usage`` (what rate-limit buckets lost by Redis are rebuilt from) and the ledger's
counts for operators."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from shared.models import ConnectorUsage, EmailMessage
from shared.sending.context import ledger_usage_source
from shared.sending.ledger import count_by_status, count_waiting, recent_usage, sent_since
from tests.send_helpers import add_connector, add_task

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def add_row(
    session: Session,
    connector_id: uuid.UUID,
    organization_id: uuid.UUID,
    status: str,
    **times: datetime | None,
) -> None:
    row = EmailMessage(
        organization_id=organization_id,
        connector_id=connector_id,
        idempotency_key=f"usage/{uuid.uuid4()}",
        recipient="someone@example.com",
        subject="Hi",
        status=status,
        sent_at=times.get("sent_at"),
    )
    session.add(row)
    session.flush()
    if "updated_at" in times:
        session.execute(
            update(EmailMessage).where(EmailMessage.id == row.id).values(updated_at=times["updated_at"])
        )


def add_usage(session: Session, connector_id: uuid.UUID, hour: datetime, emails: int) -> None:
    session.add(ConnectorUsage(connector_id=connector_id, hour=hour, emails_sent=emails, requests=1))


def test_recent_usage_counts_hourly_usage_and_in_flight_rows_by_window(
    session_factory: sessionmaker[Session],
) -> None:
    organization_id, connector_id = add_connector(session_factory)
    _, other_connector = add_connector(session_factory)
    with transaction(session_factory) as session:
        add_usage(session, connector_id, NOW, 2)  # this hour
        add_usage(session, connector_id, NOW - timedelta(hours=1), 3)  # the hour the window starts in
        add_usage(session, connector_id, NOW - timedelta(hours=3), 5)
        add_usage(session, connector_id, NOW - timedelta(hours=25), 7)  # before the day
        add_usage(session, other_connector, NOW, 11)
        add_row(session, connector_id, organization_id, "sending", updated_at=NOW - timedelta(minutes=1))
        add_row(session, connector_id, organization_id, "sending", updated_at=NOW - timedelta(hours=2))
        add_row(session, connector_id, organization_id, "queued", updated_at=NOW - timedelta(minutes=1))
        add_row(session, connector_id, organization_id, "sent", sent_at=NOW - timedelta(minutes=5))
    with session_factory() as session:
        assert recent_usage(session, connector_id, NOW + timedelta(minutes=30)) == (2 + 3 + 1, 2 + 3 + 5 + 2)
        assert recent_usage(session, other_connector, NOW) == (11, 11)


def test_recent_usage_counts_the_hour_the_window_starts_in_whole(
    session_factory: sessionmaker[Session],
) -> None:
    _, connector_id = add_connector(session_factory)
    with transaction(session_factory) as session:
        add_usage(session, connector_id, NOW - timedelta(hours=1), 4)

    with session_factory() as session:
        # 12:59: the window starts at 11:59, in the hour of 11:00, which may hold sends of the window.
        assert recent_usage(session, connector_id, NOW + timedelta(minutes=59)) == (4, 4)
        assert recent_usage(session, connector_id, NOW + timedelta(hours=1)) == (0, 4)


def test_ledger_usage_source_reads_usage_by_connector_id_string(fresh_database_url: str) -> None:
    from shared.db import make_engine, make_sessionmaker
    from shared.settings import load_settings

    engine = make_engine(load_settings(database_url=fresh_database_url))
    try:
        factory = make_sessionmaker(engine)
        organization_id, connector_id = add_connector(factory)
        with transaction(factory) as session:
            add_usage(session, connector_id, datetime.now(UTC).replace(minute=0, second=0, microsecond=0), 1)
            add_row(session, connector_id, organization_id, "sending", updated_at=datetime.now(UTC))
        assert ledger_usage_source(engine)(str(connector_id)) == (2, 2)
    finally:
        engine.dispose()


def test_count_by_status_counts_all_rows_or_a_tasks(session_factory: sessionmaker[Session]) -> None:
    organization_id, connector_id = add_connector(session_factory)
    task_id = add_task(session_factory, organization_id)
    with transaction(session_factory) as session:
        for status in ("sent", "sent", "failed"):
            add_row(session, connector_id, organization_id, status)
        session.execute(update(EmailMessage).where(EmailMessage.status == "failed").values(task_id=task_id))

    with session_factory() as session:
        assert count_by_status(session) == {"sent": 2, "failed": 1}
        assert count_by_status(session, task_id=task_id) == {"failed": 1}


def test_count_waiting_counts_only_open_rows_by_status_and_class(
    session_factory: sessionmaker[Session],
) -> None:
    organization_id, connector_id = add_connector(session_factory)
    with transaction(session_factory) as session:
        for status in ("queued", "queued", "deferred", "sending", "scheduled", "sent", "delivered", "failed"):
            add_row(session, connector_id, organization_id, status)
        session.execute(
            update(EmailMessage).where(EmailMessage.status == "deferred").values(priority="transactional")
        )

    with session_factory() as session:
        assert count_waiting(session) == {
            "scheduled": {"bulk": 1},
            "queued": {"bulk": 2},
            "deferred": {"transactional": 1},
            "sending": {"bulk": 1},
        }


def test_sent_since_sums_every_connectors_hours_since(session_factory: sessionmaker[Session]) -> None:
    _, first = add_connector(session_factory)
    _, second = add_connector(session_factory)
    with transaction(session_factory) as session:
        add_usage(session, first, NOW, 2)
        add_usage(session, second, NOW - timedelta(hours=1), 3)
        add_usage(session, second, NOW - timedelta(hours=30), 5)

    with session_factory() as session:
        assert sent_since(session, NOW - timedelta(hours=24)) == (5, 2)
