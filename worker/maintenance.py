"""Beat's housekeeping of the send ledger: release deferred rows, sweep lost work, reconcile.

Each function marks rows in one transaction, commits, then publishes ``pilot.send_email`` resume
tasks (``{connector_id, message_ids}``) through ``publish``. A publish that is lost leaves the rows
``queued``, and the next sweep finds them: nothing depends on a single publish succeeding.

* :func:`release_deferred` — ``deferred`` rows whose ``next_attempt_at`` has come.
* :func:`sweep` — ``queued`` rows untouched for :data:`STUCK_QUEUED_AFTER` (a lost outbox publish,
  a lost retry message, a worker that died before acking).
* :func:`reconcile` — ``sending`` rows (outcome unknown) untouched for :data:`STUCK_SENDING_AFTER`
  whose sender is gone (no advisory lock). Within Resend's 24-hour idempotency window the row is sent
  again with the same key and body, which *is* the look-up: Resend answers with the original email's
  id and sends nothing new. Past the window a resend could duplicate, so the row is failed with a
  "needs attention" reason instead, for an operator to check in Resend's dashboard.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from shared import task_names
from shared.db import transaction
from shared.models import EmailMessage
from worker import ledger
from worker.batching import chunks

Publish = Callable[[str, dict[str, Any]], None]

#: A queued row older than this has lost its task message.
STUCK_QUEUED_AFTER = timedelta(minutes=5)
#: Longer than any send task may run (worker.celery_app.SEND_TIME_LIMIT_S).
STUCK_SENDING_AFTER = timedelta(minutes=10)
#: Resend forgets idempotency keys after 24 h; keep an hour of margin.
IDEMPOTENCY_WINDOW = timedelta(hours=23)
#: Rows handled per run; the next run takes the rest.
MAX_ROWS_PER_RUN = 5000
#: Rows named by one resume task.
ROWS_PER_TASK = 100


def release_deferred(factory: sessionmaker[Session], publish: Publish, *, now: datetime) -> int:
    """Queue and publish the deferred rows that are due; how many."""
    with transaction(factory) as session:
        rows = _claim(
            session,
            (EmailMessage.status == "deferred") & (EmailMessage.next_attempt_at <= now),
            order=EmailMessage.next_attempt_at,
        )
        _requeue(session, rows)
    return publish_resumes(rows, publish)


def sweep(factory: sessionmaker[Session], publish: Publish, *, now: datetime) -> int:
    """Publish again the queued rows nobody touched for a while; how many."""
    with transaction(factory) as session:
        rows = _claim(
            session,
            (EmailMessage.status == "queued") & (EmailMessage.updated_at < now - STUCK_QUEUED_AFTER),
            order=EmailMessage.updated_at,
        )
        _requeue(session, rows)  # refreshes updated_at: the next sweep waits its turn
    return publish_resumes(rows, publish)


def reconcile(factory: sessionmaker[Session], publish: Publish, *, now: datetime) -> tuple[int, int]:
    """Resend (same key) or give up on ``sending`` rows whose sender is gone; (resent, given up)."""
    with transaction(factory) as session:
        stale = _claim(
            session,
            (EmailMessage.status == "sending") & (EmailMessage.updated_at < now - STUCK_SENDING_AFTER),
            order=EmailMessage.updated_at,
        )
        # Transaction locks: a pooled session hands its connection back at commit, and session locks
        # left on it would keep these rows from every sender (they stayed ``sending`` for good).
        free = ledger.try_lock(session, [row.id for row in stale], transaction=True)  # no live sender
        orphans = [row for row in stale if row.id in free]
        resend = [row for row in orphans if row.created_at > now - IDEMPOTENCY_WINDOW]
        for row in orphans:
            if row.created_at <= now - IDEMPOTENCY_WINDOW:
                ledger.mark_final(row, "failed", needs_attention_reason(row))
        _touch(session, resend)
    return publish_resumes(resend, publish), len(orphans) - len(resend)


def needs_attention_reason(row: EmailMessage) -> str:
    """Why a row was failed without knowing whether Resend sent it."""
    return (
        "needs attention: outcome unknown and Resend's 24 h idempotency window has passed, so it was "
        f"not sent again; look for tag message_id={row.id} in Resend (last error: {row.last_error})"
    )


def publish_resumes(rows: Sequence[EmailMessage], publish: Publish) -> int:
    """One resume task per connector and :data:`ROWS_PER_TASK` rows; rows published."""
    by_connector: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for row in rows:
        by_connector[row.connector_id].append(row.id)
    for connector_id, ids in by_connector.items():
        for part in chunks(ids, ROWS_PER_TASK):
            kwargs = {"connector_id": str(connector_id), "message_ids": [str(i) for i in part]}
            publish(task_names.SEND_EMAIL, kwargs)
    return len(rows)


def _claim(session: Session, condition: Any, *, order: Any) -> list[EmailMessage]:
    query = (
        select(EmailMessage)
        .where(condition)
        .order_by(order)
        .limit(MAX_ROWS_PER_RUN)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def _requeue(session: Session, rows: Sequence[EmailMessage]) -> None:
    if rows:
        session.execute(
            update(EmailMessage)
            .where(EmailMessage.id.in_([row.id for row in rows]))
            .values(status="queued", next_attempt_at=None, updated_at=ledger.now())
        )


def _touch(session: Session, rows: Sequence[EmailMessage]) -> None:
    if rows:
        session.execute(
            update(EmailMessage)
            .where(EmailMessage.id.in_([row.id for row in rows]))
            .values(updated_at=ledger.now())
        )
