"""One ledger row per idempotency key across the ledger's monthly partitions: every insert into
``email_messages`` goes through :func:`insert_new`, which locks the keys' ids (a transaction-level
advisory lock each, sorted) in a statement before the insert, whose snapshot then sees any row of
those ids committed meanwhile; the insert writes only ids in no partition (:data:`NOT_STORED`). The
primary key ``(id, created_at)`` alone cannot: a retry does not know the first row's month.
docs/architecture.md, section 13."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

#: First key of the key locks (the second is a hash of the id); no other lock uses this pair.
LOCK_NAMESPACE = 0x4C4B4559

#: Whether the id ``{id}`` is in no partition: each partition's primary key (id leading) answers.
NOT_STORED = "NOT EXISTS (SELECT FROM email_messages e WHERE e.id = {id})"

# One lock per distinct hash, in order of the hash: two ids of one hash share a lock harmlessly.
_LOCK = f"""
SELECT count(pg_advisory_xact_lock({LOCK_NAMESPACE}, k))
FROM (SELECT DISTINCT hashtext(id::text) AS k FROM unnest(%(ids)s::uuid[]) AS id ORDER BY k) AS keys
"""


def insert_new(
    conn: psycopg.Connection[Any], ids: Sequence[uuid.UUID], statement: str, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """Lock the keys of ``ids``, then run ``statement`` (an insert of those ids into the ledger that
    skips the stored ones with :data:`NOT_STORED`) with ``params``; the rows it returns.

    The locks are held until the transaction ends (on an autocommit connection, the two statements
    run in a transaction of their own)."""
    if conn.autocommit:
        with conn.transaction():
            return _locked_insert(conn, ids, statement, params)
    return _locked_insert(conn, ids, statement, params)


def _locked_insert(
    conn: psycopg.Connection[Any], ids: Sequence[uuid.UUID], statement: str, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    conn.execute(_LOCK, {"ids": list(ids)})
    cursor = conn.execute(statement, params)
    return cursor.fetchall() if cursor.description is not None else []
