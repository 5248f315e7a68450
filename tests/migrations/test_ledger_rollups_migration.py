"""Revision 0018 adds ledger_rollups and the ledger's block range index on created_at to a filled
database (no row changes) and its downgrade removes both."""

from __future__ import annotations

import psycopg

from shared import migrations
from tests.raw_connections import connect

INDEX = "ix_email_messages_created_at_brin"


def _fill(url: str) -> list[tuple[object, ...]]:
    """Ledger rows of several days, written as revision 0017 knows them; the rows as stored."""
    with connect(url) as connection:
        connection.execute(
            """
            WITH o AS (INSERT INTO organizations (name) VALUES ('o') RETURNING id),
                 c AS (INSERT INTO connectors (organization_id, name) SELECT id, 'c' FROM o RETURNING id)
            INSERT INTO email_messages (organization_id, connector_id, idempotency_key, recipient, status,
                                        created_at)
            SELECT o.id, c.id, 'fill/' || g, g || '@example.test', (ARRAY['delivered', 'queued'])[1 + g % 2],
                   timestamptz '2026-11-01 00:00+00' + make_interval(hours => g)
            FROM o, c, generate_series(0, 99) AS g
            """
        )
        return _rows(connection)


def _rows(connection: psycopg.Connection[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return connection.execute("SELECT * FROM email_messages ORDER BY idempotency_key").fetchall()


def _index_method(connection: psycopg.Connection[tuple[object, ...]]) -> object:
    """The index's access method and storage options, or None without the index."""
    found = connection.execute(
        "SELECT am.amname, c.reloptions FROM pg_class c JOIN pg_am am ON am.oid = c.relam"
        " WHERE c.oid = to_regclass(%s)",
        (INDEX,),
    ).fetchone()
    return tuple(found) if found else None


def _table(connection: psycopg.Connection[tuple[object, ...]]) -> object:
    return connection.execute("SELECT to_regclass('ledger_rollups')").fetchone()[0]  # type: ignore[index]


def test_upgrade_to_0018_adds_the_rollups_and_the_block_range_index_and_keeps_every_row(
    database_url: str,
) -> None:
    migrations.upgrade(database_url, "0017")
    before = _fill(database_url)

    migrations.upgrade(database_url)

    with connect(database_url) as connection:
        assert _rows(connection) == before
        assert _table(connection) == "ledger_rollups"
        assert _index_method(connection) == ("brin", ["autosummarize=on"])
    migrations.check(database_url)


def test_downgrade_from_0018_removes_the_rollups_and_the_index_and_keeps_every_row(database_url: str) -> None:
    migrations.upgrade(database_url, "0017")
    before = _fill(database_url)
    migrations.upgrade(database_url, "0018")

    migrations.downgrade(database_url, "0017")

    with connect(database_url) as connection:
        assert _rows(connection) == before
        assert _table(connection) is None
        assert _index_method(connection) is None
