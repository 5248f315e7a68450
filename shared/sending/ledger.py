"""The send ledger (``email_messages``) as the recording side and beat see it: write rows, read them.

Functions take a session and add to its transaction; the caller decides when to commit. What the
dispatcher does to rows (claim a unit, write its attempt, record the answer) is in
:mod:`shared.sending.queue`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.models import EmailMessage, MessageStatus
from shared.sending.rendering import RenderedMessage

#: Statuses a send may still act on; every other status is final for the sender.
OPEN_STATUSES = frozenset({MessageStatus.QUEUED, MessageStatus.DEFERRED, MessageStatus.SENDING})
#: ``last_error`` is shown to operators; keep it short.
MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class Placement:
    """Where new rows go: the queue of API key ``dispatch_key`` (its hash), ``queued``; or ``deferred``
    until ``until`` with ``reason`` (a paused connector, a spent budget)."""

    dispatch_key: str | None
    until: datetime | None = None
    reason: str | None = None

    @property
    def status(self) -> MessageStatus:
        """The status new rows are written with."""
        return MessageStatus.QUEUED if self.until is None else MessageStatus.DEFERRED


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
    placement: Placement,
) -> None:
    """Write one row per message where ``placement`` says; a row whose key exists is left as it is.

    A message with a ``refusal`` is written ``failed`` with that reason instead.
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
            "dispatch_key": placement.dispatch_key if message.refusal is None else None,
            "status": placement.status if message.refusal is None else MessageStatus.FAILED,
            "next_attempt_at": placement.until if message.refusal is None else None,
            "last_error": truncate(placement.reason if message.refusal is None else message.refusal),
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


def mark_suppressed(session: Session, reasons: Mapping[uuid.UUID, str]) -> None:
    """Deferred rows answered: their recipients are suppressed (``reasons`` by row id)."""
    if not reasons:
        return
    rows = [
        {
            "id": message_id,
            "status": MessageStatus.SUPPRESSED,
            "last_error": truncate(reason),
            "next_attempt_at": None,
        }
        for message_id, reason in reasons.items()
    ]
    # By primary key, as one executemany; a row in any other state is left as it is.
    statement = update(EmailMessage).where(EmailMessage.status == MessageStatus.DEFERRED)
    session.execute(statement.execution_options(synchronize_session=None), rows)


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
            (EmailMessage.sent_at >= day_ago) | (EmailMessage.status == MessageStatus.SENDING),
        )
    ).one()
    return int(hour), int(day)


def defer_until(seconds: float, moment: datetime) -> datetime:
    """``moment`` plus ``seconds``."""
    return moment + timedelta(seconds=seconds)


def truncate(reason: str | None) -> str | None:
    """``reason`` cut to :data:`MAX_ERROR_LENGTH` characters."""
    return None if reason is None else reason[:MAX_ERROR_LENGTH]
