"""The recipient lookups of event processing read indexes, not the ledger, on a ledger of real size.

A module database holds 100,000 ledger rows (10 campaigns) and their metrics, analyzed; the real
functions run and every statement they send that matches ``lower(recipient)`` is explained as the
planner would run it (``EXPLAIN (FORMAT JSON)``, nothing forced).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from shared.counters import recount
from shared.db import make_engine, raw_connection
from shared.models import EmailMessage
from shared.resend_events import EventType, TrackingEvent
from shared.settings import load_settings
from tests.conftest import create_database, drop_database
from tests.ledger_volume import LoadedLedger, load_ledger
from tests.query_plans import access_paths, plans_of
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
def engine(template_database: str) -> Iterator[Engine]:
    name = f"pilot_test_plans_{uuid.uuid4().hex[:10]}"
    engine = make_engine(load_settings(database_url=create_database(name, template=template_database)))
    yield engine
    engine.dispose()
    drop_database(name)


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

    assert access_paths(plan) == {
        ("email_messages", "ix_email_messages_organization_id_lower_recipient"),
        ("email_metrics", "ix_email_metrics_message_id"),
    }


def test_find_message_by_tags_reads_the_recipient_through_the_task_recipient_index(
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
    assert access_paths(plan) == {("email_messages", "ix_email_messages_task_id_lower_recipient")}


def test_task_recount_reads_the_task_through_the_task_recipient_index(
    session: Session, volume: LoadedLedger
) -> None:
    task_id = volume.task_ids[2]
    raw = raw_connection(session)

    [[explained]] = raw.execute(
        "EXPLAIN (FORMAT JSON) " + recount.RECOUNT_SENDS, {"task": task_id}
    ).fetchone()

    paths = access_paths(explained["Plan"])
    assert ("email_messages", "ix_email_messages_task_id_lower_recipient") in paths
    assert not any(kind == "Seq Scan" for table, kind in paths if table == "email_messages")
