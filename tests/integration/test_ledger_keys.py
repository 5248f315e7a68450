"""One ledger row per idempotency key across the ledger's monthly partitions (shared.sending.ledger_keys),
on the real PostgreSQL: a key stored in an older month is not written again, and two writers of one key
at once, in different months, write it once."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from shared.partitions.periods import Grain, months_before
from shared.partitions.tables import EMAIL_MESSAGES
from shared.sending import ledger, ledger_keys, queue
from shared.sending.ledger import Placement
from shared.sending.rendering import RenderedMessage, message_id_for
from tests.send_helpers import add_connector

pytestmark = pytest.mark.integration

KEY = "fedcba9876543210fedc"
NOW = datetime.now(UTC)
#: The month before the current one: a partition of its own, made by :func:`older_month`.
LAST_MONTH = Grain.MONTH.start_of(months_before(NOW, 1))

# A row written in an earlier month, through the same guard as the ledger's own inserts.
_INSERT_DATED = f"""
INSERT INTO email_messages (id, organization_id, connector_id, idempotency_key, recipient, subject, status,
                            created_at)
SELECT %(id)s, %(org)s, %(connector)s, %(key)s, 'ann@example.test', 'First', 'sent', %(at)s
WHERE {ledger_keys.NOT_STORED.format(id="%(id)s::uuid")}
ON CONFLICT (id, created_at) DO NOTHING
RETURNING id
"""


def psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def older_month(fresh_database_url: str) -> str:
    """The partition of last month (the migration makes the current month on)."""
    partition = EMAIL_MESSAGES.partition(LAST_MONTH)
    with psycopg.connect(psycopg_url(fresh_database_url), autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {partition.name} PARTITION OF email_messages"
            f" FOR VALUES FROM ('{partition.start.isoformat()}') TO ('{partition.end.isoformat()}')"
        )
    return partition.name


@pytest.fixture
def conn(fresh_database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(psycopg_url(fresh_database_url), autocommit=True) as connection:
        yield connection


def write_last_month(conn: psycopg.Connection[Any], owner: tuple[uuid.UUID, uuid.UUID], key: str) -> None:
    organization_id, connector_id = owner
    params = {
        "id": message_id_for(key),
        "org": organization_id,
        "connector": connector_id,
        "key": key,
        "at": LAST_MONTH + timedelta(days=3),
    }
    assert ledger_keys.insert_new(conn, [message_id_for(key)], _INSERT_DATED, params)


def test_insert_messages_leaves_a_key_stored_in_an_older_month_as_it_is(
    session_factory: sessionmaker[Session], conn: psycopg.Connection[Any], older_month: str
) -> None:
    owner = add_connector(session_factory)
    key = f"older/{uuid.uuid4()}"
    write_last_month(conn, owner, key)
    again = RenderedMessage(message_id_for(key), key, "ann@example.test", "Again", {"to": ["x"]})

    with transaction(session_factory) as session:
        ledger.insert_messages(
            session,
            [again],
            organization_id=owner[0],
            connector_id=owner[1],
            task_id=None,
            placement=Placement(KEY),
        )

    assert stored(conn, key) == [("First", older_month, 0)]


def test_start_alone_writes_nothing_for_a_key_stored_in_an_older_month(
    session_factory: sessionmaker[Session], conn: psycopg.Connection[Any], older_month: str
) -> None:
    owner = add_connector(session_factory)
    key = f"older/{uuid.uuid4()}"
    write_last_month(conn, owner, key)
    row = queue.AloneRow(message_id_for(key), key, *owner, None, "ann@example.test", "Again", {"to": ["x"]})

    assert queue.start_alone(conn, row, KEY) is None
    assert stored(conn, key) == [("First", older_month, 0)]


def test_two_writers_of_one_key_in_different_months_write_it_once(
    session_factory: sessionmaker[Session],
    fresh_database_url: str,
    conn: psycopg.Connection[Any],
    older_month: str,
) -> None:
    owner = add_connector(session_factory)
    key = f"race/{uuid.uuid4()}"
    row = queue.AloneRow(message_id_for(key), key, *owner, None, "ann@example.test", "Again", {"to": ["x"]})
    started: list[datetime | None] = []
    with psycopg.connect(psycopg_url(fresh_database_url)) as first:  # a transaction left open
        write_last_month(first, owner, key)
        second = threading.Thread(target=lambda: started.append(queue.start_alone(conn, row, KEY)))
        second.start()
        wait_for_key_lock_waiter(first)
        first.commit()
        second.join(timeout=10)

    assert started == [None]
    assert stored(conn, key) == [("First", older_month, 0)]


def wait_for_key_lock_waiter(conn: psycopg.Connection[Any]) -> None:
    """Until another session waits for an advisory lock (the second writer, on the key's lock)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        waiting = conn.execute(
            "SELECT count(*) FROM pg_locks"
            " WHERE locktype = 'advisory' AND NOT granted AND classid::bigint = %s",
            (ledger_keys.LOCK_NAMESPACE,),
        ).fetchone()
        if waiting and waiting[0]:
            return
        time.sleep(0.02)
    raise AssertionError("the second writer never waited for the key's lock")


def stored(conn: psycopg.Connection[Any], key: str) -> list[tuple[str, str, int]]:
    """The key's rows: subject, partition, and how many request bodies each has."""
    return [
        (subject, partition, bodies)
        for subject, partition, bodies in conn.execute(
            "SELECT m.subject, m.tableoid::regclass::text,"
            " (SELECT count(*) FROM email_requests r WHERE r.message_id = m.id)"
            " FROM email_messages m WHERE m.idempotency_key = %s",
            (key,),
        )
    ]
