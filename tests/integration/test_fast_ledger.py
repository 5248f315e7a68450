"""The fast path's ledger statements (worker.fast_ledger) on the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from shared.models import EmailMessage
from tests.send_helpers import add_connector
from worker import fast_ledger, ledger
from worker.rendering import RenderedMessage, message_id_for

pytestmark = pytest.mark.integration


def message() -> RenderedMessage:
    key = f"fast/{uuid.uuid4()}"
    return RenderedMessage(message_id_for(key), key, "Ada@Example.test", "Hi", {"to": ["Ada@Example.test"]})


@pytest.fixture
def conn(fresh_database_url: str) -> Iterator[psycopg.Connection[Any]]:
    url = fresh_database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as connection:
        yield connection


def rows(factory: sessionmaker[Session]) -> list[EmailMessage]:
    with factory() as session:
        return list(session.scalars(select(EmailMessage)))


def test_claim_writes_nothing_and_start_attempt_writes_the_row_sending_with_its_first_attempt(
    conn: psycopg.Connection[Any], session_factory: sessionmaker[Session]
) -> None:
    organization_id, connector_id = add_connector(session_factory)
    rendered = message()
    row = fast_ledger.claim(
        conn, rendered, organization_id=organization_id, connector_id=connector_id, now=datetime.now(UTC)
    )
    assert row.fresh and row.locked and row.status == "queued" and row.connector_status == "active"
    assert rows(session_factory) == []

    assert fast_ledger.start_attempt(conn, row, rendered, connector_id=connector_id)

    [written] = rows(session_factory)
    assert (written.id, written.status, written.attempts) == (rendered.id, "sending", 1)
    assert written.attempt_key == written.idempotency_key == rendered.idempotency_key
    assert (written.recipient, written.subject) == ("Ada@Example.test", "Hi")
    assert written.request == rendered.request
    fast_ledger.unlock(conn, row)


def test_a_key_being_claimed_is_locked_for_every_other_sender(
    conn: psycopg.Connection[Any], fresh_database_url: str, session_factory: sessionmaker[Session]
) -> None:
    organization_id, connector_id = add_connector(session_factory)
    rendered = message()
    first = fast_ledger.claim(
        conn, rendered, organization_id=organization_id, connector_id=connector_id, now=datetime.now(UTC)
    )
    url = fresh_database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as other:
        second = fast_ledger.claim(
            other, rendered, organization_id=organization_id, connector_id=connector_id, now=datetime.now(UTC)
        )
        assert first.locked and not second.locked
        # The second claim gave its recipient lock back: the general path may ask again later.
        with transaction(session_factory) as session:
            assert ledger.try_lock(session, [rendered.id]) == set()
    fast_ledger.unlock(conn, first)


def test_start_attempt_leaves_a_row_written_meanwhile_to_the_general_path(
    conn: psycopg.Connection[Any], session_factory: sessionmaker[Session]
) -> None:
    organization_id, connector_id = add_connector(session_factory)
    rendered = message()
    row = fast_ledger.claim(
        conn, rendered, organization_id=organization_id, connector_id=connector_id, now=datetime.now(UTC)
    )
    with transaction(session_factory) as session:  # a redelivery that went the general way
        ledger.insert_messages(
            session, [rendered], organization_id=organization_id, connector_id=connector_id, task_id=None
        )

    assert fast_ledger.start_attempt(conn, row, rendered, connector_id=connector_id) is False
    assert fast_ledger.write_queued(conn, row, rendered, connector_id=connector_id) is False
    [written] = rows(session_factory)
    assert (written.status, written.attempts, written.attempt_key) == ("queued", 0, None)
    fast_ledger.unlock(conn, row)


def test_claim_finds_a_row_already_written_and_locks_nothing(
    conn: psycopg.Connection[Any], session_factory: sessionmaker[Session]
) -> None:
    organization_id, connector_id = add_connector(session_factory)
    rendered = message()
    with transaction(session_factory) as session:
        ledger.insert_messages(
            session, [rendered], organization_id=organization_id, connector_id=connector_id, task_id=None
        )
    row = fast_ledger.claim(
        conn, rendered, organization_id=organization_id, connector_id=connector_id, now=datetime.now(UTC)
    )
    assert (row.fresh, row.locked, row.id, row.status) == (False, False, rendered.id, "queued")
    with transaction(session_factory) as session:
        assert ledger.try_lock(session, [rendered.id], transaction=True) == {rendered.id}


def test_write_queued_writes_the_row_as_the_general_path_would(
    conn: psycopg.Connection[Any], session_factory: sessionmaker[Session]
) -> None:
    organization_id, connector_id = add_connector(session_factory)
    rendered = message()
    row = fast_ledger.claim(
        conn, rendered, organization_id=organization_id, connector_id=connector_id, now=datetime.now(UTC)
    )
    assert fast_ledger.write_queued(conn, row, rendered, connector_id=connector_id)
    [written] = rows(session_factory)
    assert (written.status, written.attempts, written.attempt_key) == ("queued", 0, None)
    fast_ledger.unlock(conn, row)
