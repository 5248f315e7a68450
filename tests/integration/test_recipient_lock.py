"""Sends and suppressions of one address serialize on the recipient's advisory lock: a suppression
commits either before a send's suppression check (which then sees it) or after its delivery."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy.orm import Session, sessionmaker

from shared import suppression_admin
from shared.db import transaction
from shared.suppression import lock_recipient_for_suppression, suppress, suppress_many
from tests.send_helpers import add_connector
from worker import fast_ledger, ledger
from worker.rendering import RenderedMessage

pytestmark = pytest.mark.integration

ADDRESS = "Racer@Example.test"


def message() -> RenderedMessage:
    return RenderedMessage(uuid.uuid4(), f"lock/{uuid.uuid4()}", ADDRESS, "Hi", {"to": [ADDRESS]})


def webhook_suppression(session: Session, organization_id: uuid.UUID) -> None:
    lock_recipient_for_suppression(session, organization_id, ADDRESS.lower())
    suppress(session, organization_id, ADDRESS, "hard_bounce", source="test")


def operator_suppression(session: Session, organization_id: uuid.UUID) -> None:
    suppression_admin.add_entry(session, organization_id, suppression_admin.parse_entry(ADDRESS), actor="cli")


@pytest.mark.parametrize("suppress_in", [webhook_suppression, operator_suppression])
def test_suppression_waits_for_the_send_holding_the_recipient_lock(
    session_factory: sessionmaker[Session], suppress_in: Callable[[Session, uuid.UUID], None]
) -> None:
    organization_id, connector_id = add_connector(session_factory)
    rendered = message()
    with transaction(session_factory) as session:
        ledger.insert_messages(
            session, [rendered], organization_id=organization_id, connector_id=connector_id, task_id=None
        )
    committed_at: list[float] = []

    def suppress_address() -> None:
        with transaction(session_factory) as session:
            suppress_in(session, organization_id)
        committed_at.append(time.monotonic())

    engine = session_factory.kw["bind"]
    # The sender's own connection, held across transactions as the worker holds it.
    with engine.connect() as connection, Session(bind=connection) as sender:
        assert ledger.try_lock_recipients(sender, [rendered.id]) == {rendered.id}
        sender.commit()  # session-level: the lock outlives the transaction, as during the HTTP call
        thread = threading.Thread(target=suppress_address)
        thread.start()
        time.sleep(0.5)
        released_at = time.monotonic()
        ledger.unlock_all(sender)
        sender.commit()
    thread.join(timeout=10)
    assert committed_at and committed_at[0] >= released_at


def test_suppression_import_waits_for_the_send_holding_a_recipient_lock(
    session_factory: sessionmaker[Session],
) -> None:
    organization_id, connector_id = add_connector(session_factory)
    rendered = message()
    with transaction(session_factory) as session:
        ledger.insert_messages(
            session, [rendered], organization_id=organization_id, connector_id=connector_id, task_id=None
        )
    others = [suppression_admin.parse_entry(f"other{n}@example.test") for n in range(50)]
    committed_at: list[float] = []

    def import_addresses() -> None:
        entries = [*others[:25], suppression_admin.parse_entry(ADDRESS), *others[25:]]
        suppression_admin.import_entries(session_factory, organization_id, entries, actor="cli")
        committed_at.append(time.monotonic())

    engine = session_factory.kw["bind"]
    with engine.connect() as connection, Session(bind=connection) as sender:
        assert ledger.try_lock_recipients(sender, [rendered.id]) == {rendered.id}
        sender.commit()
        thread = threading.Thread(target=import_addresses)
        thread.start()
        time.sleep(0.5)
        released_at = time.monotonic()
        ledger.unlock_all(sender)
        sender.commit()
    thread.join(timeout=10)
    assert committed_at and committed_at[0] >= released_at


def test_sender_does_not_take_a_recipient_a_suppression_import_is_writing(
    session_factory: sessionmaker[Session],
) -> None:
    organization_id, connector_id = add_connector(session_factory)
    rendered = message()
    with transaction(session_factory) as session:
        ledger.insert_messages(
            session, [rendered], organization_id=organization_id, connector_id=connector_id, task_id=None
        )
    entries = [suppression_admin.parse_entry(ADDRESS), suppression_admin.parse_entry("other@example.test")]
    with session_factory() as importer, session_factory() as sender:
        suppress_many(importer, organization_id, entries, source="import")  # open transaction
        assert ledger.try_lock_recipients(sender, [rendered.id]) == set()
        importer.commit()
        assert ledger.try_lock_recipients(sender, [rendered.id]) == {rendered.id}
        ledger.unlock_all(sender)
        sender.commit()


def test_fast_path_attempt_is_refused_once_the_recipient_is_suppressed(
    fresh_database_url: str, session_factory: sessionmaker[Session]
) -> None:
    organization_id, connector_id = add_connector(session_factory)
    url = fresh_database_url.replace("postgresql+psycopg://", "postgresql://")
    rendered = message()
    with psycopg.connect(url, autocommit=True) as conn:
        row = fast_ledger.claim(
            conn, rendered, organization_id=organization_id, connector_id=connector_id, now=datetime.now(UTC)
        )
        assert row.locked
        # A suppression that was committing while the claim read (it could not wait: the claim's
        # statement had already taken its snapshot) must still stop the attempt.
        with transaction(session_factory) as session:
            suppress(session, organization_id, ADDRESS, "hard_bounce", source="test")
        assert fast_ledger.start_attempt(conn, row, rendered, connector_id=connector_id) is False
        fast_ledger.unlock(conn, row)


def test_sender_does_not_take_a_recipient_being_suppressed(session_factory: sessionmaker[Session]) -> None:
    organization_id, connector_id = add_connector(session_factory)
    rendered = message()
    with transaction(session_factory) as session:
        ledger.insert_messages(
            session, [rendered], organization_id=organization_id, connector_id=connector_id, task_id=None
        )
    with session_factory() as suppressor, session_factory() as sender:
        lock_recipient_for_suppression(suppressor, organization_id, ADDRESS)  # open transaction
        assert ledger.try_lock_recipients(sender, [rendered.id]) == set()
        suppressor.commit()
        assert ledger.try_lock_recipients(sender, [rendered.id]) == {rendered.id}
        ledger.unlock_all(sender)
        sender.commit()
