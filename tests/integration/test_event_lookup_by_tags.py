"""An event whose email id the ledger does not know is found by its task tag and recipient among the
rows Resend has not named (one it named is found by its own email id)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from shared.resend_events import EventType, TrackingEvent
from tests.send_helpers import add_connector
from worker.events.processing import find_message

pytestmark = pytest.mark.integration

_ROW = text(
    "INSERT INTO email_messages (id, organization_id, connector_id, task_id, idempotency_key, recipient,"
    " status, resend_email_id) VALUES (:id, :org, :connector, :task, :key, 'Ann@example.test', :status,"
    " :email_id)"
)


def test_a_tagged_event_finds_the_unnamed_row_beside_one_resend_named_for_another_email(
    session_factory: sessionmaker[Session],
) -> None:
    organization_id, connector_id = add_connector(session_factory)
    task_id, named, unnamed = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with transaction(session_factory) as session:
        session.execute(
            text("INSERT INTO tasks (id, organization_id) VALUES (:id, :org)"),
            {"id": task_id, "org": organization_id},
        )
        common = {"org": organization_id, "connector": connector_id, "task": task_id}
        session.execute(_ROW, common | {"id": named, "key": "a", "status": "sent", "email_id": "em-a"})
        # Given up by reconcile with its outcome unknown: Resend had it after all.
        session.execute(_ROW, common | {"id": unnamed, "key": "b", "status": "failed", "email_id": None})
    event = TrackingEvent(
        type=EventType.DELIVERED,
        raw_type="email.delivered",
        email_id="em-b",
        recipient="ann@example.test",
        tags={"task_id": str(task_id)},
    )

    with transaction(session_factory) as session:
        found = find_message(session, event)

    assert found.id == unnamed
