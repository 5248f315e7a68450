"""The reconcile leaves no advisory lock behind on the pooled connections it used.

It checks that no live sender holds an orphaned ``sending`` row by trying the row's lock. Session
locks taken through a pooled session outlived the commit that handed the connection back, so the
rows stayed locked against every sender (reliability scenarios 1 and 4: rows stuck ``sending``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from shared.models import EmailMessage
from tests.send_helpers import add_connector
from worker import ledger, maintenance

pytestmark = pytest.mark.integration


def test_reconcile_holds_no_advisory_lock_afterwards(session_factory: sessionmaker[Session]) -> None:
    organization_id, connector_id = add_connector(session_factory)
    row_id = uuid.uuid4()
    with transaction(session_factory) as session:
        session.add(
            EmailMessage(
                id=row_id,
                organization_id=organization_id,
                connector_id=connector_id,
                idempotency_key=f"reconcile/{row_id}",
                recipient="ann@example.test",
                status="sending",
                attempts=1,
            )
        )
        session.flush()
        stale = datetime.now(UTC) - maintenance.STUCK_SENDING_AFTER - timedelta(minutes=1)
        session.execute(update(EmailMessage).where(EmailMessage.id == row_id).values(updated_at=stale))
    published: list[dict[str, Any]] = []

    resent, _ = maintenance.reconcile(
        session_factory, lambda _, kwargs: published.append(kwargs), now=datetime.now(UTC)
    )

    assert resent == 1 and published[0]["message_ids"] == [str(row_id)]
    with session_factory() as session:
        held = session.scalar(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )
        assert held == 0
        assert ledger.try_lock(session, [row_id], transaction=True) == {row_id}  # a sender may take it
