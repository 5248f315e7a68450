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

from psycopg.types.json import Jsonb
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from shared.db import raw_connection
from shared.models import OPEN_STATUSES, ConnectorUsage, EmailMessage, MessageStatus, Priority
from shared.sending import attachments, ledger_keys
from shared.sending.rendering import RenderedMessage, caller_tags, require_derived_ids

#: ``last_error`` is shown to operators; keep it short.
MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class Placement:
    """Where new rows go: the queue of API key ``dispatch_key`` (its hash), ``queued``; or ``deferred``
    until ``until`` with ``reason`` (a paused connector, a spent budget)."""

    dispatch_key: str | None
    until: datetime | None = None
    reason: str | None = None
    #: The class the rows are sent in (transactional rows leave first and may use the reserve).
    priority: Priority = Priority.BULK

    @property
    def status(self) -> MessageStatus:
        """The status new rows are written with."""
        return MessageStatus.QUEUED if self.until is None else MessageStatus.DEFERRED


def insert_messages(
    session: Session,
    messages: Sequence[RenderedMessage],
    *,
    organization_id: uuid.UUID,
    connector_id: uuid.UUID,
    task_id: uuid.UUID | None,
    placement: Placement,
    outcomes_queue: str | None = None,
) -> None:
    """Write one row per message where ``placement`` says; a row whose key exists is left as it is.

    A message with a ``refusal`` is written ``failed`` with that reason instead; one scheduled for
    later is written ``scheduled`` (its time in ``next_attempt_at``), whatever the placement. Its
    attachment bytes are stored once per distinct content. ``outcomes_queue``: the caller's queue for
    the rows' outcome events (the outbox triggers write them).

    Raises ValueError for a message whose id is not derived from its key (the key is unique by it).
    """
    if not messages:
        return
    require_derived_ids((message.id, message.idempotency_key) for message in messages)
    waiting = [message.refusal is None for message in messages]
    conn = raw_connection(session)
    blobs = {
        digest: data
        for message, ok in zip(messages, waiting, strict=True)
        if ok
        for digest, data in message.blobs.items()
    }
    attachments.store(conn, blobs)
    ledger_keys.insert_new(
        conn,
        [message.id for message in messages],
        _INSERT,
        {
            "organization": organization_id,
            "connector": connector_id,
            "task": task_id,
            "priority": placement.priority,
            "outcomes": outcomes_queue,
            "ids": [message.id for message in messages],
            "keys": [message.idempotency_key for message in messages],
            "recipients": [message.recipient for message in messages],
            "subjects": [message.subject for message in messages],
            "topics": [message.topic for message in messages],
            "requests": [Jsonb(message.request) for message in messages],
            "tags": [_jsonb_or_none(caller_tags(message.request)) for message in messages],
            "queues": [placement.dispatch_key if ok else None for ok in waiting],
            "statuses": [placement.status if ok else MessageStatus.FAILED for ok in waiting],
            "next": [placement.until if ok else None for ok in waiting],
            "errors": [
                truncate(placement.reason if ok else message.refusal)
                for ok, message in zip(waiting, messages, strict=True)
            ],
            "scheduled": [
                message.scheduled_at if ok else None for ok, message in zip(waiting, messages, strict=True)
            ],
            "digests": [
                "{" + ",".join(message.blobs) + "}" if message.blobs else None for message in messages
            ],
        },
    )


def _jsonb_or_none(value: object) -> Jsonb | None:
    return None if value is None else Jsonb(value)


# One statement whatever the number of rows (arrays, not a VALUES list compiled per row count), and
# no ORM bookkeeping: the rows are read back by id when needed. The request bodies of the rows written
# (not of those whose key existed, in any partition: shared.sending.ledger_keys) go to email_requests.
_INSERT = """
WITH v AS (
    SELECT * FROM unnest(%(ids)s::uuid[], %(keys)s::text[], %(recipients)s::text[], %(subjects)s::text[],
                         %(topics)s::text[], %(requests)s::jsonb[], %(tags)s::jsonb[], %(queues)s::text[],
                         %(statuses)s::text[], %(next)s::timestamptz[], %(errors)s::text[],
                         %(scheduled)s::timestamptz[], %(digests)s::text[])
        AS v(id, key, recipient, subject, topic, request, tags, queue, status, next_at, error, scheduled,
             digests)
), stored AS (
    INSERT INTO email_messages (id, organization_id, connector_id, task_id, idempotency_key, recipient,
                                subject, topic, tags, dispatch_key, status, next_attempt_at, last_error,
                                priority, scheduled_at, attachment_digests, outcomes_queue)
    SELECT v.id, %(organization)s, %(connector)s, %(task)s, v.key, v.recipient, v.subject, v.topic, v.tags,
           v.queue, CASE WHEN v.scheduled > now() THEN 'scheduled' ELSE v.status END,
           CASE WHEN v.scheduled > now() THEN v.scheduled ELSE v.next_at END,
           CASE WHEN v.scheduled > now() THEN NULL ELSE v.error END, %(priority)s,
           v.scheduled, v.digests::text[], %(outcomes)s
    FROM v
    WHERE {not_stored}
    ON CONFLICT (id, created_at) DO NOTHING
    RETURNING id
)
INSERT INTO email_requests (message_id, request)
SELECT stored.id, v.request FROM stored JOIN v ON v.id = stored.id
""".replace("{not_stored}", ledger_keys.NOT_STORED.format(id="v.id"))


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


def count_by_status(session: Session, *, task_id: uuid.UUID | None = None) -> dict[str, int]:
    """Ledger rows by status: all of them, or a task's."""
    query = select(EmailMessage.status, func.count()).group_by(EmailMessage.status)
    if task_id is not None:
        query = query.where(EmailMessage.task_id == task_id)
    return {status: int(count) for status, count in session.execute(query)}


def count_waiting(session: Session) -> dict[str, dict[str, int]]:
    """The rows still open (``OPEN_STATUSES``) by status, then by class; each status is counted
    through its own partial index, so this costs what waits, never the ledger's history."""
    counts: dict[str, dict[str, int]] = {}
    for status in (status for status in MessageStatus if status in OPEN_STATUSES):
        query = (
            select(EmailMessage.priority, func.count())
            .where(EmailMessage.status == status)
            .group_by(EmailMessage.priority)
        )
        by_class = {priority: int(count) for priority, count in session.execute(query)}
        if by_class:
            counts[status] = by_class
    return counts


def sent_since(session: Session, since: datetime) -> tuple[int, int]:
    """Emails sent and requests made since ``since`` by every connector, from ``connector_usage``
    (each connector's hours through its primary key)."""
    emails, requests = session.execute(_SENT_SINCE, {"since": since}).one()
    return int(emails), int(requests)


_SENT_SINCE = text("""
SELECT coalesce(sum(u.emails), 0), coalesce(sum(u.requests), 0)
FROM connectors c, LATERAL (
    SELECT sum(emails_sent) AS emails, sum(requests) AS requests FROM connector_usage
    WHERE connector_id = c.id AND hour >= :since
) AS u
""")


def mark_suppressed(session: Session, reasons: Mapping[uuid.UUID, str]) -> None:
    """Deferred rows answered: their recipients are suppressed (``reasons`` by row id)."""
    if not reasons:
        return
    params = {
        "ids": list(reasons),
        "errors": [truncate(reason) for reason in reasons.values()],
        "status": MessageStatus.SUPPRESSED.value,
    }
    session.execute(_MARK_SUPPRESSED, params)


# By id (each partition's primary key), in one statement; a row in any other state is left as it is.
_MARK_SUPPRESSED = text(f"""
UPDATE email_messages AS m
SET status = :status, last_error = v.error, next_attempt_at = NULL, updated_at = now()
FROM unnest(CAST(:ids AS uuid[]), CAST(:errors AS text[])) AS v(id, error)
WHERE m.id = v.id AND m.status = '{MessageStatus.DEFERRED.value}'
""")


def recent_usage(session: Session, connector_id: uuid.UUID, moment: datetime) -> tuple[int, int]:
    """Emails of the connector that took a token within the hour and the day before ``moment``.

    Sent emails from the hourly ``connector_usage``, an hour the window starts in counted whole (a
    rebuilt bucket errs on the spent side); rows still ``sending`` (outcome unknown, not counted
    there yet) at their last update. What rate-limit buckets lost by Redis are rebuilt from.
    """
    hour_ago, day_ago = moment - timedelta(hours=1), moment - timedelta(days=1)
    emails = ConnectorUsage.emails_sent
    sent_hour, sent_day = session.execute(
        select(
            func.coalesce(func.sum(emails).filter(ConnectorUsage.hour >= _hour_of(hour_ago)), 0),
            func.coalesce(func.sum(emails), 0),
        ).where(ConnectorUsage.connector_id == connector_id, ConnectorUsage.hour >= _hour_of(day_ago))
    ).one()
    flying_hour, flying_day = session.execute(
        select(
            func.count().filter(EmailMessage.updated_at >= hour_ago),
            func.count().filter(EmailMessage.updated_at >= day_ago),
        ).where(EmailMessage.connector_id == connector_id, EmailMessage.status == MessageStatus.SENDING)
    ).one()
    return int(sent_hour) + int(flying_hour), int(sent_day) + int(flying_day)


def _hour_of(moment: datetime) -> datetime:
    """The ``connector_usage`` hour ``moment`` falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def defer_until(seconds: float, moment: datetime) -> datetime:
    """``moment`` plus ``seconds``."""
    return moment + timedelta(seconds=seconds)


def truncate(reason: str | None) -> str | None:
    """``reason`` cut to :data:`MAX_ERROR_LENGTH` characters."""
    return None if reason is None else reason[:MAX_ERROR_LENGTH]
