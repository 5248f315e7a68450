"""The send queue's statements (shared.sending.queue) on the real PostgreSQL, with real commits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from shared.models import ConnectorUsage, EmailMessage
from shared.sending import ledger, queue
from shared.sending.ledger import Placement
from shared.sending.queue import Answer, RowChange
from shared.sending.rendering import RenderedMessage, message_id_for
from tests.send_helpers import add_connector

pytestmark = pytest.mark.integration

KEY = "fedcba9876543210fedc"
NOW = datetime.now(UTC)


def written(
    factory: sessionmaker[Session], count: int, *, placement: Placement | None = None
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """``count`` rows of a new connector, in the queue of ``KEY`` unless ``placement`` says otherwise."""
    organization_id, connector_id = add_connector(factory)
    messages = []
    for n in range(count):
        key = f"queue/{uuid.uuid4()}"
        messages.append(RenderedMessage(message_id_for(key), key, f"r{n}@example.test", "Hi", {"to": ["x"]}))
    for message in messages:  # a transaction each, as tasks write them: created_at follows their order
        with transaction(factory) as session:
            ledger.insert_messages(
                session,
                [message],
                organization_id=organization_id,
                connector_id=connector_id,
                task_id=None,
                placement=placement or Placement(KEY),
            )
    return connector_id, [message.id for message in messages]


@pytest.fixture
def conn(fresh_database_url: str) -> Iterator[psycopg.Connection[Any]]:
    url = fresh_database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def other(fresh_database_url: str) -> Iterator[psycopg.Connection[Any]]:
    url = fresh_database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as connection:
        yield connection


def statuses(factory: sessionmaker[Session], ids: list[uuid.UUID]) -> list[str]:
    with factory() as session:
        query = select(EmailMessage.id, EmailMessage.status).where(EmailMessage.id.in_(ids))
        found = {message_id: status for message_id, status in session.execute(query)}
    return [found[message_id] for message_id in ids]


def test_claim_takes_the_oldest_queued_rows_up_to_the_limit(session_factory, conn) -> None:
    _, ids = written(session_factory, 5)

    with conn.transaction():
        found = queue.claim(conn, KEY, limit=3, now=NOW, orphaned_after=5)

    assert sorted(message_id for message_id, _ in found.rows) == sorted(ids[:3])
    assert found.due_units == []


def test_two_dispatchers_never_claim_the_same_row(session_factory, conn, other) -> None:
    _, ids = written(session_factory, 4)

    with conn.transaction(), other.transaction():
        mine = queue.claim(conn, KEY, limit=2, now=NOW, orphaned_after=5)
        theirs = queue.claim(other, KEY, limit=10, now=NOW, orphaned_after=5)

    claimed = [message_id for message_id, _ in mine.rows + theirs.rows]
    assert sorted(claimed) == sorted(ids) and len(set(claimed)) == 4


def test_claim_takes_deferred_rows_whose_time_has_come_and_leaves_the_others(session_factory, conn) -> None:
    _, due = written(session_factory, 1, placement=Placement(KEY, NOW - timedelta(seconds=1), "budget"))
    _, later = written(session_factory, 1, placement=Placement(KEY, NOW + timedelta(hours=1), "budget"))

    with conn.transaction():
        found = queue.claim(conn, KEY, limit=10, now=NOW, orphaned_after=5)

    assert [message_id for message_id, _ in found.rows] == due
    assert later[0] not in [message_id for message_id, _ in found.rows]


def test_claim_offers_a_unit_due_again_before_any_new_row(session_factory, conn) -> None:
    _, ids = written(session_factory, 3)
    with conn.transaction():
        queue.claim(conn, KEY, limit=2, now=NOW, orphaned_after=5)
        queue.write_attempt(
            conn,
            [RowChange(message_id, "sending", attempt=1, next_attempt_at=NOW) for message_id in ids[:2]],
            unit="unit-1",
        )

    with conn.transaction():
        found = queue.claim(conn, KEY, limit=10, now=NOW, orphaned_after=5)

    assert found.due_units == ["unit-1"] and found.rows == []


def test_a_unit_held_by_another_dispatcher_is_not_claimed(session_factory, conn, other) -> None:
    _, ids = written(session_factory, 2)
    with conn.transaction():
        queue.write_attempt(
            conn, [RowChange(i, "sending", attempt=1, next_attempt_at=NOW) for i in ids], unit="u"
        )

    with conn.transaction(), other.transaction():
        assert queue.claim_unit(conn, "u") is not None
        assert queue.claim_unit(other, "u") is None


def test_a_unit_of_a_hundred_rows_is_written_and_answered_by_one_statement_each(
    session_factory, conn
) -> None:
    connector_id, ids = written(session_factory, 100)
    executed: list[str] = []
    original = conn.execute

    def counting(query: Any, params: Any = None, **kw: Any) -> Any:
        executed.append(str(query).split()[0])
        return original(query, params, **kw)

    with conn.transaction():
        queue.claim(conn, KEY, limit=100, now=NOW, orphaned_after=5)
        conn.execute = counting  # type: ignore[method-assign]
        queue.write_attempt(
            conn, [RowChange(i, "sending", attempt=1, next_attempt_at=NOW) for i in ids], unit="batch-1"
        )
    queue.record_answer(
        conn,
        [Answer(i, "sent", email_id=f"e{n}") for n, i in enumerate(ids)],
        at=NOW,
        usage={connector_id: 100},
    )
    conn.execute = original  # type: ignore[method-assign]

    assert executed == ["UPDATE", "WITH"]
    assert set(statuses(session_factory, ids)) == {"sent"}
    with session_factory() as session:
        [usage] = session.scalars(select(ConnectorUsage).where(ConnectorUsage.connector_id == connector_id))
    assert (usage.emails_sent, usage.requests) == (100, 1)


def test_an_answer_that_forgets_the_unit_puts_rows_back_in_any_unit(session_factory, conn) -> None:
    _, ids = written(session_factory, 2)
    with conn.transaction():
        queue.write_attempt(
            conn, [RowChange(i, "sending", attempt=1, next_attempt_at=NOW) for i in ids], unit="u"
        )
    later = NOW + timedelta(seconds=7)

    queue.record_answer(
        conn,
        [
            Answer(i, "deferred", error="429", next_attempt_at=later, refund=True, forget_unit=True)
            for i in ids
        ],
        at=NOW,
        usage={},
    )

    with session_factory() as session:
        found = session.scalars(select(EmailMessage).where(EmailMessage.id.in_(ids))).all()
    assert {(row.status, row.attempts, row.attempt_key) for row in found} == {("deferred", 0, None)}


def test_parked_ahead_counts_the_connectors_rows_parked_for_later(session_factory, conn) -> None:
    connector_id, _ = written(
        session_factory, 2, placement=Placement(KEY, NOW + timedelta(minutes=5), "budget")
    )
    written(
        session_factory, 1, placement=Placement(KEY, NOW + timedelta(minutes=5), "budget")
    )  # another connector
    written(session_factory, 1)  # queued, not parked

    assert queue.parked_ahead(conn, connector_id, now=NOW) == 2
    assert queue.parked_ahead(conn, connector_id, now=NOW + timedelta(hours=1)) == 0
