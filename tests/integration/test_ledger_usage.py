"""``ledger.recent_usage``: what rate-limit buckets lost by Redis are rebuilt from."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from shared.models import EmailMessage
from shared.sending.context import ledger_usage_source
from shared.sending.ledger import count_by_status, recent_usage
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


def test_recent_usage_counts_sent_and_in_flight_rows_by_window(
    session_factory: sessionmaker[Session],
) -> None:
    organization_id, connector_id = add_connector(session_factory)
    _, other_connector = add_connector(session_factory)
    with transaction(session_factory) as session:
        add_row(session, connector_id, organization_id, "sent", sent_at=NOW - timedelta(minutes=5))
        add_row(session, connector_id, organization_id, "delivered", sent_at=NOW - timedelta(minutes=59))
        add_row(session, connector_id, organization_id, "bounced", sent_at=NOW - timedelta(hours=3))
        add_row(session, connector_id, organization_id, "delivered", sent_at=NOW - timedelta(hours=25))
        add_row(session, connector_id, organization_id, "sending", updated_at=NOW - timedelta(minutes=1))
        add_row(session, connector_id, organization_id, "sending", updated_at=NOW - timedelta(hours=2))
        add_row(session, connector_id, organization_id, "queued", updated_at=NOW - timedelta(minutes=1))
        add_row(session, connector_id, organization_id, "failed", updated_at=NOW - timedelta(minutes=1))
    with session_factory() as session:
        assert recent_usage(session, connector_id, NOW) == (3, 5)
        assert recent_usage(session, other_connector, NOW) == (0, 0)


def test_ledger_usage_source_reads_the_ledger_by_connector_id_string(fresh_database_url: str) -> None:
    from shared.db import make_engine, make_sessionmaker
    from shared.settings import load_settings

    engine = make_engine(load_settings(database_url=fresh_database_url))
    try:
        factory = make_sessionmaker(engine)
        organization_id, connector_id = add_connector(factory)
        with transaction(factory) as session:
            add_row(session, connector_id, organization_id, "sent", sent_at=datetime.now(UTC))
        assert ledger_usage_source(engine)(str(connector_id)) == (1, 1)
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
