"""Revision 0019 on a ledger filled at 0018: final rows lose their queue, waiting rows keep theirs, and
nothing else of any row changes."""

from __future__ import annotations

from typing import Any

import psycopg

from shared import migrations
from tests.raw_connections import connect

KEY = "0123456789abcdef0123"
STATUSES = [
    "scheduled",
    "queued",
    "deferred",
    "sending",
    "sent",
    "delivery_delayed",
    "delivered",
    "bounced",
    "complained",
    "failed",
    "suppressed",
    "cancelled",
]
OPEN = {"scheduled", "queued", "deferred", "sending"}


def _rows(connection: psycopg.Connection[tuple[Any, ...]]) -> list[dict[str, Any]]:
    cursor = connection.execute("SELECT * FROM email_messages ORDER BY idempotency_key")
    names = [column.name for column in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _fill_at_0018(url: str) -> list[dict[str, Any]]:
    """A row in each status, every one in the queue of ``KEY``; the rows as stored."""
    with connect(url) as connection:
        connection.execute(
            """
            WITH o AS (INSERT INTO organizations (name) VALUES ('o') RETURNING id),
                 c AS (INSERT INTO connectors (organization_id, name) SELECT id, 'c' FROM o RETURNING id)
            INSERT INTO email_messages (organization_id, connector_id, idempotency_key, recipient, status,
                                        dispatch_key)
            SELECT o.id, c.id, 'fill/' || s, s || '@example.test', s, %s
            FROM o, c, unnest(%s::text[]) AS s
            """,
            (KEY, STATUSES),
        )
        return _rows(connection)


def test_upgrade_to_0019_clears_the_queue_of_final_rows_only(database_url: str) -> None:
    migrations.upgrade(database_url, "0018")
    before = _fill_at_0018(database_url)

    migrations.upgrade(database_url, "0019")

    with connect(database_url) as connection:
        after = _rows(connection)
    assert {row["status"]: row["dispatch_key"] for row in after} == {
        status: KEY if status in OPEN else None for status in STATUSES
    }
    assert [row | {"dispatch_key": None} for row in after] == [row | {"dispatch_key": None} for row in before]


def test_downgrade_from_0019_leaves_final_rows_alone(database_url: str) -> None:
    migrations.upgrade(database_url, "0019")
    migrations.downgrade(database_url, "0018")

    _fill_at_0018(database_url)

    with connect(database_url) as connection:
        kept = {row["dispatch_key"] for row in _rows(connection)}
    assert kept == {KEY}


def test_upgrade_to_0019_clears_final_rows_on_every_page(database_url: str) -> None:
    migrations.upgrade(database_url, "0018")
    with connect(database_url) as connection:
        # More heap pages than one statement of the migration covers (PAGES_PER_STATEMENT).
        connection.execute(
            """
            WITH o AS (INSERT INTO organizations (name) VALUES ('o') RETURNING id),
                 c AS (INSERT INTO connectors (organization_id, name) SELECT id, 'c' FROM o RETURNING id)
            INSERT INTO email_messages (organization_id, connector_id, idempotency_key, recipient, status,
                                        dispatch_key, subject)
            SELECT o.id, c.id, 'many/' || g, 'r' || g || '@example.test', 'sent', %s, repeat('s', 200)
            FROM o, c, generate_series(1, 60000) AS g
            """,
            (KEY,),
        )
        pages = connection.execute("SELECT pg_relation_size('email_messages') / 8192").fetchone()
    assert pages is not None and pages[0] > 2000

    migrations.upgrade(database_url, "0019")

    with connect(database_url) as connection:
        keyed = connection.execute("SELECT count(*) FROM email_messages WHERE dispatch_key IS NOT NULL")
        assert keyed.fetchone() == (0,)
