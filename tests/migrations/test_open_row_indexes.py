"""Revision 0017 swaps the ledger's indexes on a filled ledger (no row changes) and its downgrade
restores the status index and the idempotency key's unique constraint."""

from __future__ import annotations

import psycopg
import pytest

from shared import migrations
from tests.raw_connections import connect

OPEN_ROW_INDEXES = {
    "ix_email_messages_deferred",
    "ix_email_messages_connector_id_priority_deferred",
    "ix_email_messages_queued_updated_at",
    "ix_email_messages_connector_id_sending",
    "ix_email_messages_connector_id",
    "ix_email_messages_resend_email_id_not_null",
    "ix_email_messages_attempt_key_not_null",
}
DROPPED = {
    "ix_email_messages_status_next_attempt_at",
    "ix_email_messages_connector_id_sent_at",
    "ix_email_messages_resend_email_id",
    "ix_email_messages_attempt_key",
    "uq_email_messages_idempotency_key",
}


def _fill(url: str) -> list[tuple[object, ...]]:
    """A ledger row in each status, written as revision 0016 knows it; the rows as stored."""
    with connect(url) as connection:
        connection.execute(
            """
            WITH o AS (INSERT INTO organizations (name) VALUES ('o') RETURNING id),
                 c AS (INSERT INTO connectors (organization_id, name) SELECT id, 'c' FROM o RETURNING id)
            INSERT INTO email_messages (organization_id, connector_id, idempotency_key, recipient, status,
                                        resend_email_id, attempt_key)
            SELECT o.id, c.id, 'fill/' || s, s || '@example.test', s,
                   CASE WHEN s IN ('sent', 'delivered') THEN 'em_' || s END,
                   CASE WHEN s IN ('sending', 'sent', 'delivered') THEN 'unit/' || s END
            FROM o, c, unnest(ARRAY['queued', 'deferred', 'sending', 'sent', 'delivered', 'failed']) AS s
            """
        )
        return _rows(connection)


def _rows(connection: psycopg.Connection[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return connection.execute("SELECT * FROM email_messages ORDER BY idempotency_key").fetchall()


def _indexes(url: str) -> set[str]:
    with connect(url) as connection:
        found = connection.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'email_messages'"
        ).fetchall()
    return {name for (name,) in found}


def test_upgrade_to_0017_keeps_every_row_and_indexes_the_open_rows_apart(database_url: str) -> None:
    migrations.upgrade(database_url, "0016")
    before = _fill(database_url)

    migrations.upgrade(database_url)

    with connect(database_url) as connection:
        assert _rows(connection) == before
    assert _indexes(database_url) >= OPEN_ROW_INDEXES
    assert not DROPPED & _indexes(database_url)
    migrations.check(database_url)


def test_downgrade_from_0017_restores_the_status_index_and_the_unique_key(database_url: str) -> None:
    migrations.upgrade(database_url, "0016")
    _fill(database_url)
    migrations.upgrade(database_url)

    migrations.downgrade(database_url, "0016")

    assert _indexes(database_url) >= DROPPED
    assert not OPEN_ROW_INDEXES & _indexes(database_url)
    with connect(database_url) as connection, pytest.raises(psycopg.errors.UniqueViolation):
        connection.execute(
            "INSERT INTO email_messages (organization_id, connector_id, idempotency_key, recipient)"
            " SELECT organization_id, connector_id, idempotency_key, recipient FROM email_messages LIMIT 1"
        )
