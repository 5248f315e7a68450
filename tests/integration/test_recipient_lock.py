"""Sends and suppressions of one address serialize on the recipient's advisory lock: a suppression
commits either before a dispatcher reads the row (which then sees it) or after its delivery."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy.orm import Session, sessionmaker

from shared import suppression_admin
from shared.db import transaction
from shared.sending import ledger, queue
from shared.sending.ledger import Placement
from shared.sending.rendering import RenderedMessage, message_id_for
from shared.suppression import lock_recipient_for_suppression, suppress, suppress_many
from tests.send_helpers import add_connector

pytestmark = pytest.mark.integration

ADDRESS = "Racer@Example.test"
KEY = "0123456789abcdef0123"


def queued_row(factory: sessionmaker[Session]) -> tuple[uuid.UUID, uuid.UUID]:
    """A connector with one row to ``ADDRESS`` in the queue of ``KEY``: (organization, row id)."""
    organization_id, connector_id = add_connector(factory)
    key = f"lock/{uuid.uuid4()}"
    rendered = RenderedMessage(message_id_for(key), key, ADDRESS, "Hi", {"to": [ADDRESS]})
    with transaction(factory) as session:
        ledger.insert_messages(
            session,
            [rendered],
            organization_id=organization_id,
            connector_id=connector_id,
            task_id=None,
            placement=Placement(KEY),
        )
    return organization_id, rendered.id


@pytest.fixture
def dispatcher_connection(fresh_database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A dispatcher's own connection: autocommit, holding recipient locks across transactions."""
    url = fresh_database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def claim(conn: psycopg.Connection[Any]) -> list[tuple[uuid.UUID, bool]]:
    with conn.transaction():
        return queue.claim(conn, KEY, limit=100, now=datetime.now(UTC), orphaned_after=5).rows


def webhook_suppression(session: Session, organization_id: uuid.UUID) -> None:
    lock_recipient_for_suppression(session, organization_id, ADDRESS.lower())
    suppress(session, organization_id, ADDRESS, "hard_bounce", source="test")


def operator_suppression(session: Session, organization_id: uuid.UUID) -> None:
    suppression_admin.add_entry(session, organization_id, suppression_admin.parse_entry(ADDRESS), actor="cli")


def import_suppression(session: Session, organization_id: uuid.UUID) -> None:
    suppress_many(session, organization_id, [suppression_admin.parse_entry(ADDRESS)], source="import")


@pytest.mark.parametrize("suppress_in", [webhook_suppression, operator_suppression, import_suppression])
def test_suppression_waits_for_the_send_holding_the_recipient_lock(
    session_factory: sessionmaker[Session],
    dispatcher_connection: psycopg.Connection[Any],
    suppress_in: Callable[[Session, uuid.UUID], None],
) -> None:
    organization_id, row_id = queued_row(session_factory)
    committed_at: list[float] = []

    def suppress_address() -> None:
        with transaction(session_factory) as session:
            suppress_in(session, organization_id)
        committed_at.append(time.monotonic())

    # The claim's transaction ends before the request: the lock outlives it, as during the HTTP call.
    assert claim(dispatcher_connection) == [(row_id, True)]
    thread = threading.Thread(target=suppress_address)
    thread.start()
    time.sleep(0.5)
    released_at = time.monotonic()
    queue.unlock_all(dispatcher_connection)
    thread.join(timeout=10)
    assert committed_at and committed_at[0] >= released_at


@pytest.mark.parametrize("suppress_in", [webhook_suppression, import_suppression])
def test_dispatcher_does_not_take_a_recipient_being_suppressed(
    session_factory: sessionmaker[Session],
    dispatcher_connection: psycopg.Connection[Any],
    suppress_in: Callable[[Session, uuid.UUID], None],
) -> None:
    organization_id, row_id = queued_row(session_factory)
    with session_factory() as suppressor:
        suppress_in(suppressor, organization_id)  # its transaction is open: the lock is held
        assert claim(dispatcher_connection) == [(row_id, False)]
        suppressor.commit()
    assert claim(dispatcher_connection) == [(row_id, True)]
    queue.unlock_all(dispatcher_connection)


def test_a_suppression_committed_before_the_lock_is_read_with_the_row(
    session_factory: sessionmaker[Session], dispatcher_connection: psycopg.Connection[Any]
) -> None:
    organization_id, row_id = queued_row(session_factory)
    with session_factory() as suppressor:
        webhook_suppression(suppressor, organization_id)
        assert claim(dispatcher_connection) == [(row_id, False)]
        suppressor.commit()

    with dispatcher_connection.transaction():
        found = queue.claim(dispatcher_connection, KEY, limit=100, now=datetime.now(UTC), orphaned_after=5)
        [row] = queue.read_claimed(dispatcher_connection, [row_id], now=datetime.now(UTC))
    queue.unlock_all(dispatcher_connection)

    assert found.rows == [(row_id, True)]
    assert row.suppressed is not None and row.suppressed[0] == "hard_bounce"
