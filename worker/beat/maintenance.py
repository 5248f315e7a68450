"""Beat's housekeeping of the send queues: wake the queues that wait, and end what nobody can finish.

:func:`release_scheduled` and :func:`release_deferred` queue due rows, :func:`sweep` dispatches keys
with stalled ``queued`` rows, :func:`reconcile` dispatches units nobody finishes and fails those past
Resend's idempotency window. Beat publishes only ``pilot.dispatch`` of the keys concerned
(docs/architecture.md, "Reliability choices").
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from shared import connector_store as store
from shared.db import raw_connection, transaction
from shared.errors import NotFound
from shared.models import EmailMessage, MessageStatus
from shared.rate_limit import api_key_hash
from shared.sending import attachments
from shared.sending.connectors import view_of
from shared.sending.context import SendContext
from shared.sending.dispatch import IDEMPOTENCY_WINDOW, needs_attention_reason
from shared.sending.ledger import truncate
from shared.sending.queue import UNIT_LOCK_KEY

#: A queued row older than this may have lost its dispatch (senders schedule one within seconds;
#: a key with a backlog is woken needlessly, which costs one reservation check).
STUCK_QUEUED_AFTER = timedelta(seconds=30)
#: A unit due again (or in flight) this long without a dispatch taking it has lost its dispatch.
STUCK_SENDING_AFTER = timedelta(minutes=2)
#: Rows examined per run; the next run takes the rest.
MAX_ROWS_PER_RUN = 5000


def release_deferred(factory: sessionmaker[Session], ctx: SendContext, *, now: datetime) -> int:
    """Queue the deferred rows whose time has come and dispatch their queues; how many rows."""
    return _release(factory, ctx, MessageStatus.DEFERRED, now=now)


def release_scheduled(factory: sessionmaker[Session], ctx: SendContext, *, now: datetime) -> int:
    """Queue the scheduled rows whose time has come, earliest (then oldest) first, and dispatch their
    queues; how many rows. From then on they are sent like any row: suppression, budgets and class
    are checked at dispatch."""
    return _release(factory, ctx, MessageStatus.SCHEDULED, now=now)


def _release(
    factory: sessionmaker[Session], ctx: SendContext, status: MessageStatus, *, now: datetime
) -> int:
    """Queue up to ``MAX_ROWS_PER_RUN`` rows of ``status`` whose time has come, earliest first."""
    due = and_(EmailMessage.status == status, EmailMessage.next_attempt_at <= now)
    with transaction(factory) as session:
        ids = session.scalars(
            select(EmailMessage.id)
            .where(due)
            .order_by(EmailMessage.next_attempt_at, EmailMessage.created_at, EmailMessage.id)
            .limit(MAX_ROWS_PER_RUN)
            .with_for_update(skip_locked=True)
        ).all()
        if ids:
            session.execute(
                update(EmailMessage)
                .where(EmailMessage.id.in_(ids))
                .values(status=MessageStatus.QUEUED, next_attempt_at=None)
            )
    released = and_(EmailMessage.id.in_(ids), EmailMessage.status == MessageStatus.QUEUED)
    _wake(factory, ctx, released)
    return len(ids)


def remove_unneeded_attachments(factory: sessionmaker[Session], *, now: datetime) -> int:
    """Remove the attachment bytes no waiting or in-flight row needs any more; how many."""
    with transaction(factory) as session:
        return attachments.remove_unneeded(raw_connection(session), now=now)


def sweep(factory: sessionmaker[Session], ctx: SendContext, *, now: datetime) -> int:
    """Dispatch the queues holding queued rows nobody touched for a while; how many rows."""
    stuck = and_(
        EmailMessage.status == MessageStatus.QUEUED, EmailMessage.updated_at < now - STUCK_QUEUED_AFTER
    )
    return _wake(factory, ctx, stuck)


def reconcile(factory: sessionmaker[Session], ctx: SendContext, *, now: datetime) -> tuple[int, int]:
    """Wake the queues of units nobody is finishing, or give up on those too old to send again.

    Returns (rows whose queue was woken, rows given up).
    """
    nobody = and_(
        EmailMessage.status == MessageStatus.SENDING,
        or_(
            EmailMessage.next_attempt_at <= now - STUCK_SENDING_AFTER,
            and_(EmailMessage.next_attempt_at.is_(None), EmailMessage.updated_at < now - STUCK_SENDING_AFTER),
        ),
    )
    with transaction(factory) as session:
        too_old = list(
            session.scalars(
                select(EmailMessage)
                # A scheduled row's window starts at its time, not when it was written.
                .where(
                    nobody,
                    func.greatest(EmailMessage.created_at, EmailMessage.scheduled_at)
                    <= now - IDEMPOTENCY_WINDOW,
                )
                .limit(MAX_ROWS_PER_RUN)
                .with_for_update(skip_locked=True)
            )
        )
        # Only units no live dispatcher holds (its lock) are given up on.
        free = {
            row.attempt_key for row in too_old if row.attempt_key and _unit_free(session, row.attempt_key)
        }
        given_up = [row for row in too_old if row.attempt_key is None or row.attempt_key in free]
        for row in given_up:
            row.status = MessageStatus.FAILED
            row.next_attempt_at = None
            row.last_error = truncate(needs_attention_reason(row.id, row.last_error))
    return _wake(factory, ctx, nobody), len(given_up)


def _unit_free(session: Session, unit: str) -> bool:
    """Whether no dispatcher holds unit ``unit`` (the lock taken here lasts until the commit)."""
    statement = text("SELECT pg_try_advisory_xact_lock(" + UNIT_LOCK_KEY.format(unit=":unit") + ")")
    return bool(session.scalar(statement, {"unit": unit}))


def _wake(factory: sessionmaker[Session], ctx: SendContext, condition: ColumnElement[bool]) -> int:
    """Give the rows matching ``condition`` their queue if they have none; dispatch those queues."""
    with transaction(factory) as session:
        unassigned = session.scalars(
            select(EmailMessage.connector_id)
            .where(condition, EmailMessage.dispatch_key.is_(None))
            .distinct()
            .limit(MAX_ROWS_PER_RUN)
        ).all()
        for connector_id in unassigned:
            _assign_key(session, ctx, connector_id, condition)
        counts = session.execute(
            select(EmailMessage.dispatch_key, func.count())
            .where(condition)
            .group_by(EmailMessage.dispatch_key)
        ).all()
    for key, _ in counts:
        if key is not None:
            ctx.scheduler.schedule(key, 0.0)
    return sum(int(count) for _, count in counts)


def _assign_key(
    session: Session, ctx: SendContext, connector_id: uuid.UUID, condition: ColumnElement[bool]
) -> None:
    """Put the connector's rows matching ``condition`` and without a queue in its key's queue."""
    try:
        connector = store.get_connector(session, connector_id)
    except NotFound:
        return
    view = view_of(connector, ctx.keyring, ctx.settings.resend_api_key)
    if view.api_key is None:
        return  # no key to send with: the rows wait (the dispatcher would only defer them again)
    session.execute(
        update(EmailMessage)
        .where(condition, EmailMessage.connector_id == connector_id, EmailMessage.dispatch_key.is_(None))
        # updated_at kept: the rows still match ``condition`` when the queues to wake are counted.
        .values(
            dispatch_key=api_key_hash(view.api_key.get_secret_value()), updated_at=EmailMessage.updated_at
        )
    )
