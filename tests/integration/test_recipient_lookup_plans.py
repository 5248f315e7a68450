"""The recipient lookups of event processing, and a cancel by idempotency key, read indexes, not the
ledger, on a ledger of real size.

A module database holds 100,000 ledger rows (10 campaigns) and their metrics, analyzed; the real
functions run and every statement they send that matches ``lower(recipient)`` is explained as the
planner would run it (``EXPLAIN (FORMAT JSON)``, nothing forced).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import psycopg
import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from shared.counters import recount
from shared.db import raw_connection
from shared.models import EmailMessage
from shared.resend_events import EventType, TrackingEvent
from shared.sending.cancellation import Selection, cancel
from tests.ledger_volume import LoadedLedger, load_ledger
from tests.query_plans import access_paths, partitions_folded, plans_of
from worker.events.processing import find_message
from worker.events.suppression import delivery_history

pytestmark = pytest.mark.integration

MESSAGES = 100_000
TASKS = 10
#: A recipient in the middle of every campaign.
RECIPIENT = 4321
#: What the recipient lookups' SQL contains, and the task recount's.
BY_RECIPIENT = "lower(email_messages.recipient)"


@pytest.fixture(scope="module")
def volume(engine: Engine) -> LoadedLedger:
    with engine.connect() as connection:
        return load_ledger(connection, messages=MESSAGES, tasks=TASKS)


@pytest.fixture
def session(engine: Engine, volume: LoadedLedger) -> Iterator[Session]:
    with Session(engine) as session:
        yield session
        session.rollback()


def stored_message(session: Session, volume: LoadedLedger, task: int) -> EmailMessage:
    return session.scalars(
        select(EmailMessage).where(
            EmailMessage.task_id == volume.task_ids[task],
            EmailMessage.recipient == volume.recipient(RECIPIENT),
        )
    ).one()


def test_delivery_history_reads_the_recipient_through_the_organization_recipient_index(
    session: Session, volume: LoadedLedger
) -> None:
    message = stored_message(session, volume, task=3)

    [plan] = plans_of(session, lambda: delivery_history(session, message), matching=BY_RECIPIENT)

    assert partitions_folded(session, access_paths(plan)) == {
        ("email_messages", "ix_email_messages_organization_id_lower_recipient"),
        ("email_metrics", "ix_email_metrics_message_id"),
    }


def test_find_message_by_tags_reads_the_recipient_through_the_index_of_rows_resend_has_not_named(
    session: Session, volume: LoadedLedger
) -> None:
    message = stored_message(session, volume, task=7)
    # A row the event's email id does not name yet: found by its task tag and recipient only.
    session.execute(update(EmailMessage).where(EmailMessage.id == message.id).values(resend_email_id=None))
    tracking = TrackingEvent(
        type=EventType.BOUNCED,
        raw_type="email.bounced",
        email_id="not-in-the-ledger",
        recipient=volume.recipient(RECIPIENT).lower(),
        tags={"task_id": str(volume.task_ids[7])},
    )
    found: list[EmailMessage] = []

    [plan] = plans_of(session, lambda: found.append(find_message(session, tracking)), matching=BY_RECIPIENT)

    assert [row.id for row in found] == [message.id]
    assert partitions_folded(session, access_paths(plan)) == {
        ("email_messages", "ix_email_messages_task_id_lower_recipient_no_email_id")
    }


def test_task_recount_reads_the_task_through_the_task_index(session: Session, volume: LoadedLedger) -> None:
    task_id = volume.task_ids[2]
    raw = raw_connection(session)

    [[explained]] = raw.execute(
        "EXPLAIN (FORMAT JSON) " + recount.RECOUNT_SENDS, {"task": task_id}
    ).fetchone()

    paths = partitions_folded(session, access_paths(explained["Plan"]))
    assert ("email_messages", "ix_email_messages_task_id") in paths
    assert not any(kind == "Seq Scan" for table, kind in paths if table == "email_messages")


class RecordingConnection:
    """A psycopg connection whose statements are recorded (SQL and parameters) as they run."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection
        self.statements: list[tuple[str, Any]] = []

    def execute(self, sql: str, params: Any = None) -> Any:
        self.statements.append((sql, params))
        return self.connection.execute(sql, params)

    def transaction(self) -> Any:
        return self.connection.transaction()


def test_cancel_by_idempotency_key_reads_the_caller_key_index(session: Session, volume: LoadedLedger) -> None:
    raw = raw_connection(session)
    raw.execute(
        "INSERT INTO email_messages (organization_id, connector_id, idempotency_key, recipient, status) "
        "SELECT %(org)s, %(connector)s, 'campaign/7/' || lpad(to_hex(g), 16, '0'), 'r' || g || '@x.test', "
        "'scheduled' FROM generate_series(1, 3) AS g",
        {"org": volume.organization_id, "connector": volume.connector_id},
    )
    recorder = RecordingConnection(raw)
    selection = Selection(connector_id=volume.connector_id, idempotency_key="campaign/7")

    outcome = cancel(cast(psycopg.Connection[Any], recorder), selection, actor="test")

    assert outcome.counts() == {"cancelled": 3}
    ledger_statements = [(sql, params) for sql, params in recorder.statements if "email_messages m" in sql]
    assert len(ledger_statements) == 2  # the UPDATE and the answers' SELECT
    for sql, params in ledger_statements:
        [[explained]] = raw.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()
        paths = partitions_folded(session, access_paths(explained["Plan"]))
        assert ("email_messages", "ix_email_messages_connector_id_caller_key") in paths, sql
        assert not any(kind == "Seq Scan" for table, kind in paths if table == "email_messages")
