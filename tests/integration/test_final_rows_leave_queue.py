"""A ledger row that becomes final leaves its API key's queue: its ``dispatch_key`` is cleared,
whatever statement finalizes it (migration 0019's trigger); a row that may still leave keeps it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from shared.models import EmailMessage
from shared.sending import cancellation, ledger, queue
from shared.sending.ledger import Placement
from shared.sending.queue import Answer, RowChange
from shared.sending.rendering import RenderedMessage, message_id_for
from tests.send_helpers import add_connector

pytestmark = pytest.mark.integration

KEY = "0123456789abcdef0123"
NOW = datetime.now(UTC)


@pytest.fixture
def conn(fresh_database_url: str) -> Iterator[psycopg.Connection[Any]]:
    url = fresh_database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as connection:
        yield connection


def queued(factory: sessionmaker[Session], count: int, placement: Placement | None = None) -> list[uuid.UUID]:
    """``count`` rows of a new connector in the queue of ``KEY`` (or as ``placement`` says)."""
    organization_id, connector_id = add_connector(factory)
    keys = [f"final/{uuid.uuid4()}" for _ in range(count)]
    messages = [
        RenderedMessage(message_id_for(key), key, f"r{n}@example.test", "Hi", {"to": ["x"]})
        for n, key in enumerate(keys)
    ]
    with transaction(factory) as session:
        ledger.insert_messages(
            session,
            messages,
            organization_id=organization_id,
            connector_id=connector_id,
            task_id=None,
            placement=placement or Placement(KEY),
        )
    return [message.id for message in messages]


def in_flight(factory: sessionmaker[Session], conn: psycopg.Connection[Any], count: int) -> list[uuid.UUID]:
    """``count`` rows claimed and written ``sending`` in one unit."""
    ids = queued(factory, count)
    with conn.transaction():
        queue.claim(conn, KEY, limit=count, now=NOW, orphaned_after=300)
        queue.write_attempt(conn, [RowChange(i, "sending", attempt=1) for i in ids], unit=f"unit/{ids[0]}")
    return ids


def keys_of(factory: sessionmaker[Session], ids: list[uuid.UUID]) -> list[str | None]:
    with factory() as session:
        return [session.get_one(EmailMessage, message_id).dispatch_key for message_id in ids]


def test_a_row_answered_sent_loses_its_queue(session_factory, conn) -> None:
    ids = in_flight(session_factory, conn, 2)

    queue.record_answer(conn, [Answer(i, "sent", email_id=f"em-{i}") for i in ids], at=NOW, usage={})

    assert keys_of(session_factory, ids) == [None, None]


def test_a_row_answered_failed_loses_its_queue(session_factory, conn) -> None:
    ids = in_flight(session_factory, conn, 1)

    queue.record_answer(conn, [Answer(ids[0], "failed", error="refused")], at=NOW, usage={})

    assert keys_of(session_factory, ids) == [None]


def test_a_row_whose_answer_is_a_retry_keeps_its_queue(session_factory, conn) -> None:
    ids = in_flight(session_factory, conn, 1)

    later = NOW + timedelta(minutes=1)
    queue.record_answer(conn, [Answer(ids[0], "sending", next_attempt_at=later)], at=NOW, usage={})

    assert keys_of(session_factory, ids) == [KEY]


def test_a_row_deferred_keeps_its_queue(session_factory, conn) -> None:
    ids = queued(session_factory, 1)

    with conn.transaction():
        queue.claim(conn, KEY, limit=1, now=NOW, orphaned_after=300)
        wait = RowChange(ids[0], "deferred", next_attempt_at=NOW + timedelta(minutes=5), error="budget")
        queue.write_attempt(conn, [wait], unit="u")
    queue.unlock_all(conn)

    assert keys_of(session_factory, ids) == [KEY]


def test_a_cancelled_row_loses_its_queue(session_factory, conn) -> None:
    ids = queued(session_factory, 1)

    cancellation.cancel(conn, cancellation.Selection(message_ids=(ids[0],)), actor="test")

    assert keys_of(session_factory, ids) == [None]


def test_a_deferred_row_found_suppressed_loses_its_queue(session_factory) -> None:
    ids = queued(session_factory, 1, Placement(KEY, NOW + timedelta(hours=1), "budget"))

    with transaction(session_factory) as session:
        ledger.mark_suppressed(session, {ids[0]: "suppressed: hard bounce"})

    assert keys_of(session_factory, ids) == [None]


def test_any_statement_that_makes_a_row_final_clears_its_queue(session_factory) -> None:
    ids = queued(session_factory, 1)

    with transaction(session_factory) as session:
        session.execute(text("UPDATE email_messages SET status = 'delivered' WHERE id = :id"), {"id": ids[0]})

    assert keys_of(session_factory, ids) == [None]


def test_a_row_written_final_is_written_without_a_queue(session_factory) -> None:
    ids = queued(session_factory, 1)
    with transaction(session_factory) as session:
        session.execute(text("DELETE FROM email_messages WHERE id = :id"), {"id": ids[0]})
        session.execute(
            text(
                "INSERT INTO email_messages (id, organization_id, connector_id, idempotency_key, recipient,"
                " status, dispatch_key) SELECT gen_random_uuid(), organization_id, id, 'k', 'a@example.test',"
                " 'sent', :key FROM connectors LIMIT 1 RETURNING id"
            ),
            {"key": KEY},
        )

    with session_factory() as session:
        found = session.execute(text("SELECT dispatch_key FROM email_messages WHERE idempotency_key = 'k'"))
        assert found.scalar_one() is None
