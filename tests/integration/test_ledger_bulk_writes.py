"""A unit's rows are marked sending and sent by one statement each (worker.ledger) on the real PostgreSQL."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from shared.models import EmailMessage
from tests.send_helpers import add_connector
from worker import ledger
from worker.rendering import RenderedMessage, message_id_for

pytestmark = pytest.mark.integration

SENT_AT = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def written_rows(
    factory: sessionmaker[Session], count: int, *, attempt_key: str | None = None
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """``count`` queued rows of a new connector: the connector and the rows' ids."""
    organization_id, connector_id = add_connector(factory)
    messages = []
    for i in range(count):
        key = f"bulk/{uuid.uuid4()}"
        messages.append(RenderedMessage(message_id_for(key), key, f"r{i}@example.test", "Hi", {"to": ["x"]}))
    with factory() as session:
        ledger.insert_messages(
            session, messages, organization_id=organization_id, connector_id=connector_id, task_id=None
        )
        if attempt_key is not None:
            session.get_one(EmailMessage, messages[0].id).attempt_key = attempt_key
        session.commit()
    return connector_id, [message.id for message in messages]


@contextlib.contextmanager
def statements_sent(session: Session) -> Iterator[list[tuple[str, bool]]]:
    """The SQL statements ``session`` sends inside the block: (first word, sent as executemany)."""
    seen: list[tuple[str, bool]] = []

    def record(_c: object, _cursor: object, statement: str, _p: object, _x: object, many: bool) -> None:
        seen.append((statement.split()[0], many))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def fresh(factory: sessionmaker[Session], ids: list[uuid.UUID]) -> list[EmailMessage]:
    with factory() as session:
        found = {row.id: row for row in session.scalars(select(EmailMessage).where(EmailMessage.id.in_(ids)))}
        return [found[i] for i in ids]


def test_mark_sending_counts_an_attempt_on_every_row_and_keeps_a_first_attempt_key(
    session_factory: sessionmaker[Session],
) -> None:
    connector_id, ids = written_rows(session_factory, 3, attempt_key="earlier-key")
    with session_factory() as session:
        rows = ledger.load_messages(session, ids, connector_id=connector_id)
        ledger.mark_sending(session, rows, "unit-key")
        session.commit()

        assert [(r.status, r.attempts, r.attempt_key) for r in rows] == [
            ("sending", 1, "earlier-key"),
            ("sending", 1, "unit-key"),
            ("sending", 1, "unit-key"),
        ]
    assert [(r.status, r.attempts, r.attempt_key) for r in fresh(session_factory, ids)] == [
        ("sending", 1, "earlier-key"),
        ("sending", 1, "unit-key"),
        ("sending", 1, "unit-key"),
    ]


def test_a_hundred_rows_are_marked_sent_by_one_statement_and_left_with_nothing_to_flush(
    session_factory: sessionmaker[Session],
) -> None:
    connector_id, ids = written_rows(session_factory, 100)
    with session_factory() as session:
        rows = ledger.load_messages(session, ids, connector_id=connector_id)
        ledger.mark_sending(session, rows, "unit-key")
        session.commit()
        with statements_sent(session) as statements:
            ledger.mark_sent_many(session, [(row, f"email-{i}") for i, row in enumerate(rows)], SENT_AT)
            session.commit()

        assert statements == [("UPDATE", False)]  # not a hundred UPDATEs sent as an executemany
        assert {row.status for row in rows} == {"sent"}
    stored = fresh(session_factory, ids)
    assert [row.resend_email_id for row in stored] == [f"email-{i}" for i in range(100)]
    assert {(row.status, row.sent_at, row.last_error, row.next_attempt_at) for row in stored} == {
        ("sent", SENT_AT, None, None)
    }
