"""Which parked rows a newly parked row queues behind (worker.parking.parked_ahead)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from shared.models import EmailMessage
from tests.send_helpers import add_connector
from worker.parking import parked_ahead

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def park(
    factory: sessionmaker[Session], ids: tuple[uuid.UUID, uuid.UUID], *, status: str, until: datetime | None
) -> None:
    organization_id, connector_id = ids
    with transaction(factory) as session:
        session.add(
            EmailMessage(
                organization_id=organization_id,
                connector_id=connector_id,
                idempotency_key=f"park/{uuid.uuid4()}",
                recipient="r@example.test",
                status=status,
                next_attempt_at=until,
            )
        )


def test_rows_parked_for_later_are_ahead(session_factory: sessionmaker[Session]) -> None:
    ids = add_connector(session_factory)
    park(session_factory, ids, status="deferred", until=NOW + timedelta(minutes=5))
    park(session_factory, ids, status="deferred", until=NOW + timedelta(hours=2))

    with session_factory() as session:
        assert parked_ahead(session, ids[1], NOW) == 2


def test_rows_due_already_or_not_parked_are_not_ahead(session_factory: sessionmaker[Session]) -> None:
    ids = add_connector(session_factory)
    park(session_factory, ids, status="deferred", until=NOW - timedelta(seconds=1))
    park(session_factory, ids, status="deferred", until=NOW)
    park(session_factory, ids, status="queued", until=None)
    park(session_factory, ids, status="sent", until=None)

    with session_factory() as session:
        assert parked_ahead(session, ids[1], NOW) == 0


def test_rows_parked_by_another_connector_are_not_ahead(session_factory: sessionmaker[Session]) -> None:
    ids, other = add_connector(session_factory), add_connector(session_factory)
    park(session_factory, other, status="deferred", until=NOW + timedelta(minutes=5))

    with session_factory() as session:
        assert parked_ahead(session, ids[1], NOW) == 0
