"""The send ledger (``email_messages``): write rows, claim them, record what happened.

Functions take a session and add to its transaction; :mod:`worker.sending` decides when to commit.

Claiming uses PostgreSQL *session* advisory locks, one per row, taken with ``pg_try_advisory_lock``
on the connection that sends: a second delivery of the same work skips a row another worker is
sending, and a worker killed mid-send releases its locks with its connection, so the redelivered
task may take over at once. The row's own status and ``attempts`` are committed before the HTTP
call, so a crash loop still counts against :data:`worker.retry_policy.MAX_ATTEMPTS`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT, JSONB, UUID, insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from shared.models import EmailMessage, Task
from shared.suppression import RECIPIENT_LOCK_KEY
from worker.rendering import RenderedMessage

#: Statuses a send may still act on; every other status is final for the sender.
OPEN_STATUSES = frozenset({"queued", "deferred", "sending"})
#: ``last_error`` is shown to operators; keep it short.
MAX_ERROR_LENGTH = 500


def now() -> datetime:
    """The current time (UTC)."""
    return datetime.now(UTC)


def insert_messages(
    session: Session,
    messages: Sequence[RenderedMessage],
    *,
    organization_id: uuid.UUID,
    connector_id: uuid.UUID,
    task_id: uuid.UUID | None,
    status: str = "queued",
    last_error: str | None = None,
) -> None:
    """Write one row per message; a row whose key exists already is left as it is.

    A message with a ``refusal`` is written ``failed`` with that reason, whatever ``status`` says.
    """
    if not messages:
        return
    rows = [
        {
            "id": message.id,
            "organization_id": organization_id,
            "connector_id": connector_id,
            "task_id": task_id,
            "idempotency_key": message.idempotency_key,
            "recipient": message.recipient,
            "subject": message.subject,
            "request": message.request,
            "status": status if message.refusal is None else "failed",
            "last_error": truncate(last_error if message.refusal is None else message.refusal),
        }
        for message in messages
    ]
    # Rows as parameter sets, not one VALUES clause: SQLAlchemy caches the statement and sends the
    # rows in multi-row batches; a 100-row VALUES was compiled afresh every time (7x the CPU).
    statement = insert(EmailMessage).on_conflict_do_nothing(index_elements=["idempotency_key"])
    session.execute(statement, rows)


def load_messages(
    session: Session, ids: Sequence[uuid.UUID], *, connector_id: uuid.UUID, refresh: bool = False
) -> list[EmailMessage]:
    """The connector's rows with ``ids``, in the order of ``ids`` (missing ids, and rows of any other
    connector, are left out: a caller-supplied id never reaches another tenant's row).

    ``refresh`` overwrites rows the session already holds with what the database says now.
    """
    query = select(EmailMessage).where(EmailMessage.id.in_(ids), EmailMessage.connector_id == connector_id)
    if refresh:
        query = query.execution_options(populate_existing=True)
    found = {row.id: row for row in session.scalars(query)}
    return [found[message_id] for message_id in ids if message_id in found]


def try_lock(session: Session, ids: Iterable[uuid.UUID], *, transaction: bool = False) -> set[uuid.UUID]:
    """Take the advisory lock of each row that no other session holds; the ids locked.

    The locks belong to the session's connection and outlive its transactions: call
    :func:`unlock_all` before the connection goes back to the pool. With ``transaction`` they are
    transaction locks instead, released by the commit (for a session whose connection may change:
    a pooled session returns its connection at commit, locks and all).
    """
    by_key = {lock_key(message_id): message_id for message_id in ids}
    if not by_key:
        return set()
    function = "pg_try_advisory_xact_lock" if transaction else "pg_try_advisory_lock"
    statement = text(f"SELECT k FROM unnest(:keys) AS k WHERE {function}(k)").bindparams(
        bindparam("keys", type_=ARRAY(BIGINT))
    )
    return {by_key[key] for key in session.scalars(statement, {"keys": list(by_key)})}


_TRY_LOCK_RECIPIENTS = text(
    "SELECT id FROM email_messages WHERE id = ANY(:ids) AND pg_try_advisory_lock("
    + RECIPIENT_LOCK_KEY.format(org="organization_id", email="recipient")
    + ")"
).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))


def try_lock_recipients(session: Session, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Take the recipient lock of each of rows ``ids`` that nobody else holds; the rows locked.

    Never waits (a worker killed while waiting would leave a backend holding the lock when it comes):
    a row whose recipient is busy (being suppressed, or sent in another email) is tried again later.
    Released by :func:`unlock_all`.
    """
    if not ids:
        return set()
    return set(session.scalars(_TRY_LOCK_RECIPIENTS, {"ids": list(ids)}))


def unlock_all(session: Session) -> None:
    """Release every advisory lock of the session's connection."""
    session.execute(text("SELECT pg_advisory_unlock_all()"))


def lock_key(message_id: uuid.UUID) -> int:
    """The 64-bit advisory lock number of a row (the first 8 bytes of its UUID)."""
    return int.from_bytes(message_id.bytes[:8], "big", signed=True)


def is_due(row: EmailMessage, moment: datetime) -> bool:
    """Whether an open row may be sent now (a deferred row waits for ``next_attempt_at``)."""
    if row.status not in OPEN_STATUSES:
        return False
    return row.status != "deferred" or row.next_attempt_at is None or row.next_attempt_at <= moment


_MARK_SENDING = text("""
UPDATE email_messages SET status = 'sending', attempts = attempts + 1, next_attempt_at = NULL,
    attempt_key = COALESCE(attempt_key, :key), updated_at = now()
WHERE id = ANY(CAST(:ids AS uuid[]))
""")

_MARK_SENT = text("""
UPDATE email_messages AS m SET status = 'sent', resend_email_id = v.email_id, sent_at = :at,
    last_error = NULL, next_attempt_at = NULL, updated_at = now()
FROM unnest(CAST(:ids AS uuid[]), CAST(:email_ids AS text[])) AS v(id, email_id)
WHERE m.id = v.id
""")


def mark_sending(session: Session, rows: Sequence[EmailMessage], key: str) -> None:
    """An attempt under idempotency ``key`` starts: it counts, whatever happens next (a crash too).

    The first attempt's key stays on the row (``attempt_key``): every later attempt must be the
    same unit under the same key. One statement for all the rows (a batch's hundred would be a
    hundred UPDATEs from the ORM's flush); the loaded rows are given the written values.
    """
    session.flush()  # the rows' own pending changes first: their written values are set below
    session.execute(_MARK_SENDING, {"ids": [row.id for row in rows], "key": key})
    for row in rows:
        _written(
            row,
            status="sending",
            attempts=row.attempts + 1,
            next_attempt_at=None,
            attempt_key=row.attempt_key or key,
        )


def mark_sent_many(session: Session, sent: Sequence[tuple[EmailMessage, str]], at: datetime) -> None:
    """Resend accepted each ``(row, email_id)``: one statement for all, as :func:`mark_sending`."""
    if not sent:
        return
    session.flush()
    params = {"ids": [row.id for row, _ in sent], "email_ids": [email_id for _, email_id in sent], "at": at}
    session.execute(_MARK_SENT, params)
    for row, email_id in sent:
        _written(
            row, status="sent", resend_email_id=email_id, sent_at=at, last_error=None, next_attempt_at=None
        )


def _written(row: EmailMessage, **values: Any) -> None:
    """Give a loaded row the values a statement wrote, as its database state (nothing to flush)."""
    for name, value in values.items():
        set_committed_value(row, name, value)


def load_attempt(session: Session, key: str, *, connector_id: uuid.UUID) -> list[EmailMessage]:
    """The connector's open rows that went out under attempt ``key`` (read afresh), in their unit's order."""
    query = (
        select(EmailMessage)
        .where(
            EmailMessage.attempt_key == key,
            EmailMessage.connector_id == connector_id,
            EmailMessage.status.in_(OPEN_STATUSES),
        )
        .order_by(EmailMessage.idempotency_key)
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(query))


def mark_sent(row: EmailMessage, email_id: str, at: datetime) -> None:
    """Resend accepted the email and named it ``email_id``."""
    row.status = "sent"
    row.resend_email_id = email_id
    row.sent_at = at
    row.last_error = None
    row.next_attempt_at = None


def mark_final(row: EmailMessage, status: str, reason: str) -> None:
    """``failed`` or ``suppressed``, with the reason."""
    row.status = status
    row.last_error = truncate(reason)
    row.next_attempt_at = None


def mark_waiting(row: EmailMessage, reason: str, *, until: datetime | None, refund: bool) -> None:
    """Not sent: back to ``queued`` (a short wait) or ``deferred`` until ``until``.

    ``refund`` gives the attempt back: waiting for a budget or a rate limit is not a failed attempt.
    """
    row.status = "queued" if until is None else "deferred"
    row.next_attempt_at = until
    row.last_error = truncate(reason)
    if refund and row.attempts > 0:
        row.attempts -= 1


def mark_unknown(row: EmailMessage, reason: str) -> None:
    """The attempt may or may not have reached Resend: stay ``sending``; a retry uses the same key."""
    row.status = "sending"
    row.last_error = truncate(reason)


def recent_usage(session: Session, connector_id: uuid.UUID, moment: datetime) -> tuple[int, int]:
    """Emails of the connector that took a token within the hour and the day before ``moment``.

    Sent rows count at ``sent_at`` (whatever their status became since); rows still ``sending``
    (outcome unknown) at their last update. What rate-limit buckets lost by Redis are rebuilt from.
    """
    hour_ago, day_ago = moment - timedelta(hours=1), moment - timedelta(days=1)
    at = func.coalesce(EmailMessage.sent_at, EmailMessage.updated_at)
    hour, day = session.execute(
        select(
            func.count().filter(at >= hour_ago),
            func.count().filter(at >= day_ago),
        ).where(
            EmailMessage.connector_id == connector_id,
            (EmailMessage.sent_at >= day_ago) | (EmailMessage.status == "sending"),
        )
    ).one()
    return int(hour), int(day)


def defer_until(seconds: float, moment: datetime) -> datetime:
    """``moment`` plus ``seconds``."""
    return moment + timedelta(seconds=seconds)


def refresh_task_counts(session: Session, task_id: uuid.UUID) -> None:
    """Recount the task's ledger rows by status into ``execution_result["sends"]``.

    The task row is locked first, so the count (a new snapshot) sees every commit before it and the
    last writer always writes the full count. ``||`` keeps the other keys (``delivery`` belongs to
    webhook processing).

    ``FOR NO KEY UPDATE``, not ``FOR UPDATE``: the ledger inserts' foreign-key checks hold KEY SHARE
    locks on the task row until their transactions end, and ``FOR UPDATE`` is the one mode that
    conflicts with KEY SHARE, so two senders of one task each waited for the other's insert.
    NO KEY UPDATE still conflicts with itself (recounts stay serialized) and is the mode the
    ``UPDATE`` below takes anyway (it changes no key column).
    """
    session.flush()  # the count below must see this session's own changes
    locked = session.scalar(select(Task.id).where(Task.id == task_id).with_for_update(key_share=True))
    if locked is None:
        return
    counts: dict[str, Any] = {
        status: count
        for status, count in session.execute(
            select(EmailMessage.status, func.count())
            .where(EmailMessage.task_id == task_id)
            .group_by(EmailMessage.status)
        )
    }
    counts["total"] = sum(counts.values())
    merged = Task.execution_result.op("||")(literal({"sends": counts}, JSONB))
    session.execute(update(Task).where(Task.id == task_id).values(execution_result=merged))


def truncate(reason: str | None) -> str | None:
    """``reason`` cut to :data:`MAX_ERROR_LENGTH` characters."""
    return None if reason is None else reason[:MAX_ERROR_LENGTH]
