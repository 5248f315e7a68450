"""The ledger statements of the single-recipient fast path, on a raw autocommit psycopg connection.

Three statements per email instead of about a dozen: :func:`claim` (write or find the row, read the
recipient's suppression and the connector's live status, take the row's advisory lock: one
statement), :func:`start_attempt` (the attempt is committed before the HTTP call) and
:func:`record_sent` (the outcome, the connector's usage and the lock's release). Each statement is
its own transaction (autocommit), so none costs a ``BEGIN``/``COMMIT`` round trip.

:func:`claim` reads with the snapshot its statement started with, before its lock was taken, so the
row it returns may be a moment old; :func:`start_attempt` therefore only moves a row that still has
the status and attempts read (compare-and-set): a stale claim loses and the caller falls back to
the general path, which reads again under the lock. (Only rows the claim itself wrote are sent
here, so in practice the compare always holds; it is a guard, not a hot-path branch.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from shared.suppression import RECIPIENT_LOCK_KEY
from worker.ledger import lock_key
from worker.rendering import RenderedMessage

_CLAIM = """
WITH ins AS (
    INSERT INTO email_messages
        (id, organization_id, connector_id, idempotency_key, recipient, subject, request, status)
    VALUES (%(id)s, %(org)s, %(cid)s, %(key)s, %(recipient)s, %(subject)s, %(request)s, 'queued')
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, recipient, status, attempts, next_attempt_at, last_error, resend_email_id, true AS fresh
), found AS (
    SELECT * FROM ins
    UNION ALL
    SELECT id, recipient, status, attempts, next_attempt_at, last_error, resend_email_id, false
    FROM email_messages WHERE idempotency_key = %(key)s AND NOT EXISTS (SELECT FROM ins)
), sup AS (
    SELECT reason, created_at FROM suppression_list
    WHERE organization_id = %(org)s AND email = %(email)s AND (expires_at IS NULL OR expires_at > %(now)s)
)
SELECT f.id, f.recipient, f.status, f.attempts, f.next_attempt_at, f.last_error, f.resend_email_id,
       f.fresh, (SELECT status FROM connectors WHERE id = %(cid)s), s.reason, s.created_at,
       CASE WHEN f.fresh AND s.reason IS NULL THEN
           CASE WHEN pg_try_advisory_lock(RLOCK) THEN
               CASE WHEN pg_try_advisory_lock(%(lock)s) THEN 2 ELSE 1 END
           ELSE 0 END
       ELSE 0 END
FROM found f LEFT JOIN sup s ON true
""".replace("RLOCK", RECIPIENT_LOCK_KEY.format(org="%(org)s", email="%(email)s"))

_START = """
UPDATE email_messages SET status = 'sending', attempts = attempts + 1, next_attempt_at = NULL,
    attempt_key = COALESCE(attempt_key, idempotency_key), updated_at = now()
WHERE id = %(id)s AND status = %(status)s AND attempts = %(attempts)s
    AND NOT EXISTS (
        SELECT FROM suppression_list
        WHERE organization_id = %(org)s AND email = %(email)s AND (expires_at IS NULL OR expires_at > now())
    )
RETURNING attempts
"""

_SENT = """
WITH sent AS (
    UPDATE email_messages SET status = 'sent', resend_email_id = %(email_id)s, sent_at = %(at)s,
        last_error = NULL, next_attempt_at = NULL, updated_at = now()
    WHERE id = %(id)s
), usage AS (
    INSERT INTO connector_usage (connector_id, hour, emails_sent, requests) VALUES (%(cid)s, %(hour)s, 1, 1)
    ON CONFLICT (connector_id, hour) DO UPDATE SET
        emails_sent = connector_usage.emails_sent + 1, requests = connector_usage.requests + 1
)
SELECT pg_advisory_unlock(%(lock)s), pg_advisory_unlock(RLOCK)
""".replace("RLOCK", RECIPIENT_LOCK_KEY.format(org="%(org)s", email="%(email)s"))

_UNLOCK = "SELECT pg_advisory_unlock(%(lock)s), pg_advisory_unlock(RLOCK)".replace(
    "RLOCK", RECIPIENT_LOCK_KEY.format(org="%(org)s", email="%(email)s")
)
_UNLOCK_RECIPIENT = "SELECT pg_advisory_unlock(RLOCK)".replace(
    "RLOCK", RECIPIENT_LOCK_KEY.format(org="%(org)s", email="%(email)s")
)


@dataclass
class ClaimedRow:
    """The ledger row as :func:`claim` read it, with the recipient's suppression and the lock."""

    id: uuid.UUID
    recipient: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    resend_email_id: str | None
    #: Written by this claim (else a redelivery or a retry found it).
    fresh: bool
    connector_status: str | None
    suppressed: tuple[str, datetime] | None
    #: The row's lock and its recipient's (see ``shared.suppression.RECIPIENT_LOCK_KEY``), both or neither.
    locked: bool
    organization_id: uuid.UUID | None = None
    #: The recipient as suppressions store it (trimmed, lower case).
    email: str = ""


def claim(
    conn: psycopg.Connection[Any],
    message: RenderedMessage,
    *,
    organization_id: uuid.UUID,
    connector_id: uuid.UUID,
    now: datetime,
) -> ClaimedRow | None:
    """Write the row unless its key exists; read it back, locked if this claim wrote it.

    The lock is taken only for a fresh row of a recipient not suppressed: anything else (a retry, a
    redelivery, a suppression) is the general path's. None when the row is not visible yet (another
    transaction wrote the key after this statement began).
    """
    params = {
        "id": message.id,
        "org": organization_id,
        "cid": connector_id,
        "key": message.idempotency_key,
        "recipient": message.recipient,
        "email": message.recipient.strip().lower(),
        "subject": message.subject,
        "request": Jsonb(message.request),
        "now": now,
        "lock": lock_key(message.id),
    }
    row = conn.execute(_CLAIM, params).fetchone()
    if row is None:
        return None
    message_id, recipient, status, attempts, next_at, last_error, email_id, fresh, cstatus = row[:9]
    reason, since, locks = row[9:]
    if locks == 1:  # the recipient's lock without the row's: give it back (the general path decides)
        conn.execute(_UNLOCK_RECIPIENT, params)
    return ClaimedRow(
        message_id,
        recipient,
        status,
        attempts,
        next_at,
        last_error,
        email_id,
        fresh,
        cstatus,
        suppressed=None if reason is None else (reason, since),
        locked=locks == 2,
        organization_id=organization_id,
        email=message.recipient.strip().lower(),
    )


def start_attempt(conn: psycopg.Connection[Any], row: ClaimedRow) -> bool:
    """Mark the row ``sending`` with one more attempt, if it is still as claimed and its recipient was
    not suppressed meanwhile (committed at once; this statement reads after the recipient's lock)."""
    params = {
        "id": row.id,
        "status": row.status,
        "attempts": row.attempts,
        "org": row.organization_id,
        "email": row.email,
    }
    moved = conn.execute(_START, params).fetchone()
    if moved is None:
        return False
    row.status, row.attempts, row.next_attempt_at = "sending", int(moved[0]), None
    return True


def record_sent(
    conn: psycopg.Connection[Any], row: ClaimedRow, *, email_id: str, at: datetime, connector_id: uuid.UUID
) -> None:
    """The row is ``sent`` as ``email_id``; one email and one request of usage; the lock is released."""
    params = {
        "id": row.id,
        "email_id": email_id,
        "at": at,
        "cid": connector_id,
        "hour": at.replace(minute=0, second=0, microsecond=0),
        "lock": lock_key(row.id),
        "org": row.organization_id,
        "email": row.email,
    }
    conn.execute(_SENT, params)
    row.status, row.resend_email_id, row.last_error = "sent", email_id, None


def unlock(conn: psycopg.Connection[Any], row: ClaimedRow) -> None:
    """Release the row's advisory lock and its recipient's."""
    conn.execute(_UNLOCK, {"lock": lock_key(row.id), "org": row.organization_id, "email": row.email})
