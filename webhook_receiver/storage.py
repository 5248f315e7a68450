"""Store a verified webhook before acknowledging it: ``webhook_events``, unique on ``svix_id``.

One statement, one round trip: the INSERT runs in autocommit (a single statement is atomic, so a
BEGIN/COMMIT pair would only add two round trips), and it is built once with bound parameters.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.exc import DataError, SQLAlchemyError

from shared.errors import PayloadInvalid, PilotError
from shared.models import WebhookEvent

_INSERT = (
    insert(WebhookEvent)
    .values(svix_id=bindparam("svix_id"), type=bindparam("type"), payload=bindparam("payload", type_=JSONB))
    .on_conflict_do_nothing(index_elements=["svix_id"])
    .returning(WebhookEvent.id)
)


_INSERT_MANY = (
    insert(WebhookEvent)
    .on_conflict_do_nothing(index_elements=["svix_id"])
    .returning(WebhookEvent.svix_id, WebhookEvent.id)
)


class StorageUnavailable(PilotError):
    """Raised when the database cannot store the event; the receiver answers 503 so Resend retries."""


def autocommit(engine: Engine) -> Engine:
    """``engine`` in autocommit mode, for single-statement writes."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def store_event(
    engine: Engine, *, svix_id: str, event_type: str, payload: dict[str, Any]
) -> uuid.UUID | None:
    """Insert the event and return its id, or ``None`` if ``svix_id`` was stored before (a replay).

    ``ON CONFLICT DO NOTHING`` makes a thousand concurrent copies of one delivery store one row.
    ``engine`` must be in autocommit (:func:`autocommit`): the row is committed when this returns. Raises
    :class:`StorageUnavailable`, or :class:`PayloadInvalid` for JSON PostgreSQL refuses
    (``\\u0000`` or a lone surrogate in a string: retrying cannot help, so it is a 400).
    """
    params = {"svix_id": svix_id, "type": event_type, "payload": payload}
    try:
        with engine.connect() as connection:
            event_id: uuid.UUID | None = connection.execute(_INSERT, params).scalar_one_or_none()
            return event_id
    except DataError:
        raise PayloadInvalid("webhook payload cannot be stored as JSONB") from None
    except SQLAlchemyError as exc:
        raise StorageUnavailable(f"database unavailable: {type(exc).__name__}") from exc


def store_events(engine: Engine, rows: list[tuple[str, str, dict[str, Any]]]) -> dict[str, uuid.UUID]:
    """Insert ``(svix_id, type, payload)`` rows in one statement; returns the ids of the new ones.

    Copies of one ``svix_id`` in ``rows`` are inserted once. Raises like :func:`store_event`.
    """
    unique = {svix_id: (event_type, payload) for svix_id, event_type, payload in reversed(rows)}
    params = [{"svix_id": k, "type": t, "payload": p} for k, (t, p) in unique.items()]
    try:
        with engine.connect() as connection:
            # SQLAlchemy's "insertmanyvalues" turns this into one multi-row INSERT … RETURNING.
            return {svix_id: event_id for svix_id, event_id in connection.execute(_INSERT_MANY, params)}
    except DataError:
        raise PayloadInvalid("webhook payload cannot be stored as JSONB") from None
    except SQLAlchemyError as exc:
        raise StorageUnavailable(f"database unavailable: {type(exc).__name__}") from exc


def database_ok(engine: Engine) -> bool:
    """Whether the database answers ``SELECT 1``."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True
