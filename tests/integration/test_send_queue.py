"""The send queue's statements (shared.sending.queue) on the real PostgreSQL, with real commits."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from shared.models import ConnectorUsage, EmailMessage, Priority
from shared.sending import ledger, queue
from shared.sending.ledger import Placement
from shared.sending.queue import Answer, RowChange
from shared.sending.rendering import RenderedMessage, message_id_for
from tests.send_helpers import add_connector, add_suppressions, stored_request

pytestmark = pytest.mark.integration

KEY = "fedcba9876543210fedc"
NOW = datetime.now(UTC)


def written(
    factory: sessionmaker[Session],
    count: int,
    *,
    placement: Placement | None = None,
    owner: tuple[uuid.UUID, uuid.UUID] | None = None,
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """``count`` rows of a new connector (or of ``owner``: organization and connector), in the queue
    of ``KEY`` unless ``placement`` says otherwise."""
    organization_id, connector_id = owner or add_connector(factory)
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


def test_claim_takes_transactional_rows_before_older_bulk_rows(session_factory, conn) -> None:
    _, bulk = written(session_factory, 3)
    _, transactional = written(session_factory, 2, placement=Placement(KEY, priority=Priority.TRANSACTIONAL))

    with conn.transaction():
        found = queue.claim(conn, KEY, limit=3, now=NOW, orphaned_after=5)
        rows = queue.read_claimed(conn, [message_id for message_id, _ in found.rows], now=NOW)

    assert [row.id for row in rows] == [*transactional, bulk[0]]
    assert [row.priority for row in rows] == [Priority.TRANSACTIONAL, Priority.TRANSACTIONAL, Priority.BULK]


def test_claim_takes_due_transactional_rows_before_due_bulk_rows_parked_earlier(
    session_factory, conn
) -> None:
    _, bulk = written(session_factory, 2, placement=Placement(KEY, NOW - timedelta(minutes=5), "budget"))
    _, transactional = written(
        session_factory,
        1,
        placement=Placement(KEY, NOW - timedelta(minutes=1), "budget", Priority.TRANSACTIONAL),
    )

    with conn.transaction():
        found = queue.claim(conn, KEY, limit=2, now=NOW, orphaned_after=5)
        rows = queue.read_claimed(conn, [message_id for message_id, _ in found.rows], now=NOW)

    assert [row.id for row in rows] == [*transactional, bulk[0]]


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

    assert queue.parked_ahead(conn, connector_id, now=NOW, priority=Priority.BULK) == 2
    assert queue.parked_ahead(conn, connector_id, now=NOW + timedelta(hours=1), priority=Priority.BULK) == 0


def test_parked_ahead_of_transactional_rows_counts_only_transactional_rows(session_factory, conn) -> None:
    later = NOW + timedelta(minutes=5)
    owner = add_connector(session_factory)
    connector_id, _ = written(session_factory, 2, placement=Placement(KEY, later, "budget"), owner=owner)
    written(
        session_factory, 1, placement=Placement(KEY, later, "budget", Priority.TRANSACTIONAL), owner=owner
    )

    assert queue.parked_ahead(conn, connector_id, now=NOW, priority=Priority.TRANSACTIONAL) == 1
    assert queue.parked_ahead(conn, connector_id, now=NOW, priority=Priority.BULK) == 3


# --- the alone lane: a single email that finds its key's queue empty --------------------------------


def alone_row(factory: sessionmaker[Session], recipient: str = "ann@example.test") -> queue.AloneRow:
    """A single email of a new connector, not written yet."""
    organization_id, connector_id = add_connector(factory)
    key = f"alone/{uuid.uuid4()}"
    request = {"from": "a@example.test", "to": [recipient], "subject": "Hi", "text": "x"}
    return queue.AloneRow(
        message_id_for(key), key, organization_id, connector_id, None, recipient, "Hi", request
    )


def test_claim_alone_on_an_empty_queue_finds_nothing_in_the_way_and_holds_both_locks(
    session_factory, conn
) -> None:
    row = alone_row(session_factory)

    found = queue.claim_alone(conn, row, KEY, now=NOW)

    assert found == queue.AloneClaim(
        key_taken=False,
        queue_waiting=False,
        connector_status="active",
        task_organization_id=None,
        suppressed=False,
        locked=True,
    )
    held = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
    )
    assert held.fetchone() == (2,)


def test_claim_alone_sees_ready_rows_waiting_in_the_keys_queue(session_factory, conn) -> None:
    written(session_factory, 1)

    found = queue.claim_alone(conn, alone_row(session_factory), KEY, now=NOW)

    assert found.queue_waiting


def test_claim_alone_ignores_rows_parked_for_later(session_factory, conn) -> None:
    written(session_factory, 1, placement=Placement(KEY, NOW + timedelta(hours=1), "budget"))

    found = queue.claim_alone(conn, alone_row(session_factory), KEY, now=NOW)

    assert not found.queue_waiting


def test_claim_alone_sees_a_taken_key(session_factory, conn) -> None:
    row = alone_row(session_factory)
    assert queue.start_alone(conn, row, KEY) is not None
    queue.unlock_all(conn)

    assert queue.claim_alone(conn, row, "another-key", now=NOW).key_taken


def test_claim_alone_sees_an_active_suppression_of_the_recipient(session_factory, conn) -> None:
    row = alone_row(session_factory)
    add_suppressions(session_factory, row.organization_id, ["ANN@example.test"])

    assert queue.claim_alone(conn, row, KEY, now=NOW).suppressed


def test_claim_alone_holds_no_lock_when_the_recipient_is_busy(session_factory, conn, other) -> None:
    row = alone_row(session_factory)
    assert queue.claim_alone(other, row, KEY, now=NOW).locked  # another sender holds it

    found = queue.claim_alone(conn, row, KEY, now=NOW)

    assert not found.locked
    held = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
    )
    assert held.fetchone() == (0,)


def test_start_alone_writes_the_row_in_flight_under_its_own_key(session_factory, conn) -> None:
    row = alone_row(session_factory)

    assert queue.start_alone(conn, row, KEY) is not None

    with session_factory() as session:
        stored = session.get_one(EmailMessage, row.id)
        body = stored_request(session, row.id)
    assert (stored.status, stored.attempts, stored.attempt_key, stored.dispatch_key) == (
        "sending",
        1,
        row.idempotency_key,
        KEY,
    )
    assert (stored.next_attempt_at, body) == (None, row.request)


def test_start_alone_writes_nothing_for_a_recipient_suppressed_since_the_claim(session_factory, conn) -> None:
    row = alone_row(session_factory)
    add_suppressions(session_factory, row.organization_id, ["ann@example.test"])

    assert queue.start_alone(conn, row, KEY) is None
    with session_factory() as session:
        assert session.get(EmailMessage, row.id) is None


def test_start_alone_writes_nothing_when_the_key_is_taken(session_factory, conn) -> None:
    row = alone_row(session_factory)
    assert queue.start_alone(conn, row, KEY) is not None

    assert queue.start_alone(conn, row, KEY) is None


def test_start_alone_refuses_a_row_whose_id_is_not_derived_from_its_key(session_factory, conn) -> None:
    row = dataclasses.replace(alone_row(session_factory), id=uuid.uuid4())

    with pytest.raises(ValueError, match="not derived from its idempotency key"):
        queue.start_alone(conn, row, KEY)


# --- recording: a key is written once, through the id derived from it --------------------------------


def test_insert_messages_writes_a_key_once_and_leaves_the_first_row_as_it_is(session_factory) -> None:
    organization_id, connector_id = add_connector(session_factory)
    key = f"once/{uuid.uuid4()}"
    first = RenderedMessage(message_id_for(key), key, "ann@example.test", "First", {"to": ["x"]})
    again = dataclasses.replace(first, subject="Again")
    for message in (first, again):
        with transaction(session_factory) as session:
            ledger.insert_messages(
                session,
                [message],
                organization_id=organization_id,
                connector_id=connector_id,
                task_id=None,
                placement=Placement(KEY),
            )

    with session_factory() as session:
        rows = session.scalars(select(EmailMessage).where(EmailMessage.idempotency_key == key)).all()
    assert [(row.id, row.subject) for row in rows] == [(first.id, "First")]


def test_insert_messages_refuses_a_message_whose_id_is_not_derived_from_its_key(session_factory) -> None:
    organization_id, connector_id = add_connector(session_factory)
    key = f"stray/{uuid.uuid4()}"
    stray = RenderedMessage(uuid.uuid4(), key, "ann@example.test", "Hi", {"to": ["x"]})

    with pytest.raises(ValueError, match="not derived from"), session_factory() as session:
        ledger.insert_messages(
            session,
            [stray],
            organization_id=organization_id,
            connector_id=connector_id,
            task_id=None,
            placement=Placement(KEY),
        )
