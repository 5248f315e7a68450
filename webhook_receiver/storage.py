"""Store verified webhooks before acknowledging them: ``webhook_events``, unique on ``svix_id`` and the
event's own time (its partition key: every redelivery of an event carries the same time).

The receiver's one write, written for speed: plain SQL on the driver connection, the body's own JSON
text cast ``::jsonb`` (parsed once, never serialized again), one multi-row ``INSERT … ON CONFLICT DO
NOTHING`` per batch in autocommit (docs/architecture.md, "Webhooks").
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from shared.errors import PayloadInvalid, PilotError

#: Seconds to wait for a connection before answering 503.
CONNECT_TIMEOUT_S = 5
#: Milliseconds an INSERT may run before PostgreSQL cancels it (503): the request writing a batch
#: waits for it with no timeout of its own (the others give up after ``WRITE_TIMEOUT_S``).
STATEMENT_TIMEOUT_MS = 30_000
#: One row to store: ``(svix_id, type, payload as JSON text, the payload's created_at)``.
Row = tuple[str, str, str, datetime]


class StorageUnavailable(PilotError):
    """Raised when the database cannot store the event; the receiver answers 503 so Resend retries."""


def autocommit(engine: Engine) -> Engine:
    """``engine`` in autocommit mode, for single-statement work."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


@cache
def insert_sql(rows: int) -> str:
    """The INSERT of ``rows`` events (one text per batch size, so psycopg prepares each once)."""
    values = ", ".join(["(%s, %s, %s::jsonb, %s)"] * rows)
    return (
        f"INSERT INTO webhook_events (svix_id, type, payload, occurred_at) VALUES {values} "
        "ON CONFLICT (svix_id, occurred_at) DO NOTHING RETURNING svix_id, id"
    )


class EventStore:
    """Inserts events on one autocommit connection of its own, held between calls and opened with the
    engine's connect arguments (outside its pool: the connection's life is ours to end; it is closed
    when the store is garbage-collected). Not thread-safe: one thread at a time (the group writer's
    leader). After an error the connection is dropped and the next call opens another."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: psycopg.Connection[Any] | None = None
        self._held_cursor: psycopg.Cursor[Any] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def engine(self) -> Engine:
        """Where the connect arguments come from."""
        return self._engine

    def insert(self, rows: Sequence[Row]) -> dict[str, uuid.UUID]:
        """Insert ``rows`` in one statement; returns the ids of the new ones by ``svix_id``.

        Copies of one ``svix_id`` are inserted once; ids stored before are absent from the result.
        Raises :class:`StorageUnavailable`, or :class:`PayloadInvalid` for JSON PostgreSQL refuses
        (``\\u0000`` or a lone surrogate in a string: retrying cannot help, so it is a 400).
        """
        unique = {svix_id: (kind, payload, at) for svix_id, kind, payload, at in reversed(rows)}
        params = [value for svix_id, (t, p, at) in unique.items() for value in (svix_id, t, p, at)]
        try:
            cursor = self._cursor().execute(insert_sql(len(unique)), params)
            return {svix_id: event_id for svix_id, event_id in cursor.fetchall()}
        except psycopg.DataError:
            raise PayloadInvalid("webhook payload cannot be stored as JSONB") from None
        except psycopg.Error as exc:
            self.close()
            raise StorageUnavailable(f"database unavailable: {type(exc).__name__}") from exc

    def close(self) -> None:
        """Close the held connection, if any (idle, after an error, in tests)."""
        connection, self._connection, self._held_cursor = self._connection, None, None
        if self._finalizer is not None:
            self._finalizer.detach()
        if connection is not None:
            connection.close()

    def _cursor(self) -> psycopg.Cursor[Any]:
        # One cursor for the connection's life: a cursor per statement costs more CPU than the send.
        if self._held_cursor is None or self._held_cursor.connection.closed:
            self._held_cursor = self._connect().cursor()
        return self._held_cursor

    def _connect(self) -> psycopg.Connection[Any]:
        if self._connection is None or self._connection.closed:
            args, kwargs = self._engine.dialect.create_connect_args(self._engine.url)
            kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
            timeout = f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
            kwargs["options"] = f"{kwargs.get('options', '')} {timeout}".strip()
            self.close()
            self._connection = psycopg.connect(*args, autocommit=True, **kwargs)
            self._finalizer = weakref.finalize(self, self._connection.close)
        return self._connection


def database_ok(engine: Engine) -> bool:
    """Whether the database answers ``SELECT 1``."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True
