"""The send queue of an API key, in PostgreSQL: claim a unit, write its attempt, record the answer.

One statement per step (:func:`claim`, :func:`read_claimed`, :func:`write_attempt`,
:func:`record_answer`; the alone lane's :func:`claim_alone` and :func:`start_alone`), each on the
dispatcher's own psycopg connection, which holds the recipient locks from the suppression check until
the answer is recorded. The steps: docs/architecture.md, "The send path".
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from shared.address_hashing import ADDRESS_HASH_SQL
from shared.models import Priority, ReputationState
from shared.sending import ledger_keys
from shared.sending.rendering import caller_tags, require_derived_ids
from shared.suppression import RECIPIENT_LOCK_KEY
from shared.unsubscribe.topics import ENTRY_STOPS_EMAIL

#: Due units looked at per claim (the first one free is taken).
RETRY_CANDIDATES = 5

_RLOCK = RECIPIENT_LOCK_KEY.format(org="m.organization_id", email="m.recipient")

# A unit is due again when its retry time has come, or when it has been in flight (no retry time)
# for a while: then its dispatcher may be gone, which :func:`claim_unit` tells by its lock.
_DUE = f"""
due AS (
    SELECT attempt_key FROM email_messages
    WHERE dispatch_key = %(key)s AND status = 'sending'
        AND (next_attempt_at <= %(now)s
             OR (next_attempt_at IS NULL AND updated_at < now() - make_interval(secs => %(orphaned)s)))
    ORDER BY next_attempt_at NULLS FIRST LIMIT {RETRY_CANDIDATES}
), flying AS (
    SELECT FROM email_messages
    WHERE dispatch_key = %(key)s AND status = 'sending' AND next_attempt_at IS NULL LIMIT 1
)"""
#: The classes in the order their rows leave a key's queue, and the SQL ranking a row by it.
CLASS_ORDER = (Priority.TRANSACTIONAL, Priority.BULK)
_RANK = "CASE {column} " + " ".join(f"WHEN '{p}' THEN {rank}" for rank, p in enumerate(CLASS_ORDER)) + " END"
#: Every class, written so the queue's indexes (class second) serve a look at all of them.
_ANY_CLASS = "priority IN (" + ", ".join(f"'{p}'" for p in CLASS_ORDER) + ")"
# The oldest ready rows of each class: queued, or deferred whose time has come (``{only}``: unless a
# unit is due); transactional ones first.
_READY_CLASS = """
queued_{rank} AS (
    SELECT id, {rank} AS rank, created_at FROM email_messages
    WHERE dispatch_key = %(key)s AND priority = '{priority}' AND status = 'queued' {only}
    ORDER BY created_at, id LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), waited_{rank} AS (
    SELECT id, {rank} AS rank, created_at FROM email_messages
    WHERE dispatch_key = %(key)s AND priority = '{priority}' AND status = 'deferred'
        AND next_attempt_at <= %(now)s {only}
    ORDER BY next_attempt_at LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)"""


def _ready(only: str) -> str:
    parts = [_READY_CLASS.format(rank=rank, priority=p, only=only) for rank, p in enumerate(CLASS_ORDER)]
    ready = " UNION ALL ".join(
        f"SELECT * FROM {kind}_{rank}" for rank in range(len(CLASS_ORDER)) for kind in ("queued", "waited")
    )
    return (
        ",".join(parts)
        + f""", picked AS (
    SELECT id FROM ({ready}) AS ready
    ORDER BY rank, created_at, id LIMIT %(limit)s
)"""
    )


_TAKE = (
    "SELECT m.id, pg_try_advisory_lock(" + _RLOCK + "){extra} FROM email_messages m JOIN picked USING (id)"
)
_CLAIM = (
    "WITH"
    + _DUE
    + ","
    + _ready("AND NOT EXISTS (SELECT FROM due)")
    + """
SELECT DISTINCT NULL::uuid, NULL::bool, attempt_key FROM due
UNION ALL
SELECT NULL, NULL, '' FROM flying
UNION ALL
"""
    + _TAKE.format(extra=", NULL")
)
_CLAIM_READY = "WITH" + _ready("") + "\n" + _TAKE.format(extra="")

#: A unit's lock: held (session level) by its dispatcher from its attempt until its answer, so a unit
#: in flight is never taken by another, and one whose dispatcher died (its connection closed) is.
UNIT_LOCK_KEY = "hashtextextended({unit}, 7)"
_LOCK_UNIT = "SELECT pg_try_advisory_xact_lock(" + UNIT_LOCK_KEY.format(unit="%(unit)s") + ")"

# Every row of the unit, whatever became of it since: a retry resends the unit whole (same members,
# same key, same body), and only its rows still ``sending`` take the answer.
_CLAIM_UNIT = f"""
SELECT m.id, pg_try_advisory_lock({_RLOCK}) FROM email_messages m
WHERE m.attempt_key = %(unit)s
FOR UPDATE
"""

# The reputation guard's hold on a bulk row: a paused scope of it (its organization, connector or
# campaign) that was not resumed after the row was written (a resume releases what waited then).
_HELD = (
    "SELECT reason FROM reputation_states"
    f" WHERE state = '{ReputationState.PAUSED}'"
    " AND scope_id IN (m.organization_id, m.connector_id, m.task_id)"
    " AND (resumed_at IS NULL OR resumed_at < m.created_at) LIMIT 1"
)

# A transactional row of a paused organization (or connector) goes at the organization's small rate.
_PAUSED = (
    "SELECT reason FROM reputation_states"
    f" WHERE state = '{ReputationState.PAUSED}' AND scope_id IN (m.organization_id, m.connector_id) LIMIT 1"
)

# The body is looked up row by row (its primary key, message_id leading): with no foreign key to the
# partitioned ledger, the planner no longer knows a row has one body at most and would hash the day's.
_READ = (
    """
SELECT m.id, m.connector_id, m.organization_id, m.task_id, m.idempotency_key, m.recipient,
       coalesce(r.request, '{}'::jsonb), m.attempts, m.attempt_key, m.last_error, m.status,
       GREATEST(m.created_at, m.scheduled_at), c.status,
       s.reason, s.created_at,
       m.priority, h.reason, p.reason
FROM email_messages m
JOIN connectors c ON c.id = m.connector_id
LEFT JOIN LATERAL (SELECT request FROM email_requests WHERE message_id = m.id LIMIT 1) r ON true
LEFT JOIN LATERAL (
    SELECT reason, created_at FROM suppression_list s
    WHERE s.organization_id = m.organization_id
        AND s.email IN (lower(btrim(m.recipient)), """
    + ADDRESS_HASH_SQL.format(org="m.organization_id", email="m.recipient")
    + """)
        AND (s.expires_at IS NULL OR s.expires_at > %(now)s) AND """
    + ENTRY_STOPS_EMAIL.format(entry="s", topic="m.topic")
    + """
    ORDER BY s.topic LIMIT 1
) s ON true
LEFT JOIN LATERAL ("""
    + _HELD
    + f""") h ON m.priority = '{Priority.BULK}'
LEFT JOIN LATERAL ("""
    + _PAUSED
    + f""") p ON m.priority = '{Priority.TRANSACTIONAL}'
WHERE m.id = ANY(%(ids)s)
ORDER BY """
    + _RANK.format(column="m.priority")
    + """, m.created_at, m.id
"""
)

_WRITE = (
    """
UPDATE email_messages AS m SET
    status = v.status,
    attempts = m.attempts + v.attempt,
    attempt_key = CASE WHEN v.status = 'sending' THEN COALESCE(m.attempt_key, %(unit)s)
                       ELSE m.attempt_key END,
    next_attempt_at = v.next_at,
    last_error = COALESCE(v.error, m.last_error),
    updated_at = now()
FROM unnest(%(ids)s::uuid[], %(statuses)s::text[], %(attempts)s::int[], %(next)s::timestamptz[],
            %(errors)s::text[]) AS v(id, status, attempt, next_at, error),
    (SELECT pg_advisory_lock("""
    + UNIT_LOCK_KEY.format(unit="%(unit)s")
    + """)) AS held
WHERE m.id = v.id
"""
)

_REKEY = "UPDATE email_messages SET dispatch_key = %(key)s, updated_at = now() WHERE id = ANY(%(ids)s)"

_ANSWER = """
WITH outcome AS (
    UPDATE email_messages AS m SET
        status = v.status,
        resend_email_id = COALESCE(v.email_id, m.resend_email_id),
        sent_at = CASE WHEN v.email_id IS NULL THEN m.sent_at ELSE %(at)s END,
        last_error = v.error,
        next_attempt_at = v.next_at,
        attempts = m.attempts - v.refund,
        attempt_key = CASE WHEN v.forget THEN NULL ELSE m.attempt_key END,
        updated_at = now()
    FROM unnest(%(ids)s::uuid[], %(statuses)s::text[], %(email_ids)s::text[], %(errors)s::text[],
                %(next)s::timestamptz[], %(refunds)s::int[], %(forget)s::bool[])
        AS v(id, status, email_id, error, next_at, refund, forget)
    WHERE m.id = v.id
), usage AS (
    INSERT INTO connector_usage (connector_id, hour, emails_sent, requests)
    SELECT u.connector_id, %(hour)s, u.emails, 1
    FROM unnest(%(connectors)s::uuid[], %(emails)s::int[]) AS u(connector_id, emails)
    ON CONFLICT (connector_id, hour) DO UPDATE SET
        emails_sent = connector_usage.emails_sent + excluded.emails_sent,
        requests = connector_usage.requests + excluded.requests
)
SELECT pg_advisory_unlock_all()
"""

# An active suppression of the alone lane's recipient (for everything, or its email's topic; its
# address or the address's hash), as of ``{now}``.
_HASHED_EMAIL = ADDRESS_HASH_SQL.format(org="%(org)s::uuid", email="%(email)s::text")
_SUPPRESSED_NOW = f"""SELECT FROM suppression_list s
        WHERE s.organization_id = %(org)s AND s.email IN (lower(btrim(%(email)s)), {_HASHED_EMAIL})
            AND (s.expires_at IS NULL OR s.expires_at > {{now}})
            AND {ENTRY_STOPS_EMAIL.format(entry="s", topic="%(topic)s::text")}"""

# Everything the alone lane needs to know, in one read: is the key taken already, does any row of the
# queue wait (ready, or a unit due again: they go first), the connector's live status, the task's
# organization, an active suppression; then the recipient's lock and the unit's, tried.
_CLAIM_ALONE = f"""
SELECT
    EXISTS (SELECT FROM email_messages WHERE id = %(id)s),
    EXISTS (SELECT FROM email_messages WHERE dispatch_key = %(key)s AND status = 'queued' AND {_ANY_CLASS})
        OR EXISTS (SELECT FROM email_messages WHERE dispatch_key = %(key)s AND status = 'deferred'
                   AND {_ANY_CLASS} AND next_attempt_at <= %(now)s)
        OR EXISTS (SELECT FROM email_messages WHERE dispatch_key = %(key)s AND status = 'sending'
                   AND next_attempt_at <= %(now)s),
    (SELECT status FROM connectors WHERE id = %(connector)s),
    (SELECT organization_id FROM tasks WHERE id = %(task)s),
    EXISTS ({_SUPPRESSED_NOW.format(now="%(now)s")}),
    EXISTS (SELECT FROM reputation_states WHERE state = '{ReputationState.PAUSED}' AND scope_id IN
        (%(org)s, %(connector)s, CASE WHEN %(priority)s = '{Priority.BULK}' THEN %(task)s::uuid END)),
    pg_try_advisory_lock({RECIPIENT_LOCK_KEY.format(org="%(org)s::uuid", email="%(email)s::text")}),
    pg_try_advisory_lock({UNIT_LOCK_KEY.format(unit="%(ikey)s")})
"""

# The row, already in flight under its own key: written only if no suppression of its recipient is
# active now (a new snapshot, taken after the recipient's lock) and its key is free in every partition
# (taken after the key's lock: shared.sending.ledger_keys).
_START_ALONE = f"""
WITH stored AS (
    INSERT INTO email_messages (id, organization_id, connector_id, task_id, idempotency_key, recipient,
                                subject, topic, tags, dispatch_key, status, attempts, attempt_key,
                                priority, outcomes_queue)
    SELECT %(id)s, %(org)s, %(connector)s, %(task)s, %(ikey)s, %(email)s, %(subject)s, %(topic)s, %(tags)s,
           %(key)s, 'sending', 1, %(ikey)s, %(priority)s, %(outcomes)s
    WHERE NOT EXISTS ({_SUPPRESSED_NOW.format(now="now()")})
        AND {ledger_keys.NOT_STORED.format(id="%(id)s::uuid")}
    ON CONFLICT (id, created_at) DO NOTHING
    RETURNING id, created_at
), body AS (
    INSERT INTO email_requests (message_id, request) SELECT id, %(request)s FROM stored
)
SELECT created_at FROM stored
"""

_PARKED_AHEAD = """
SELECT count(*) FROM email_messages
WHERE connector_id = %(connector)s AND status = 'deferred' AND next_attempt_at > %(now)s
    AND priority = ANY(%(classes)s)
"""


@dataclass(frozen=True)
class Claim:
    """What :func:`claim` found: due units to retry (their attempt keys), or new rows (with whether
    their recipient's lock was taken), at most one of the two; and whether a unit is in flight."""

    due_units: list[str]
    rows: list[tuple[uuid.UUID, bool]]
    in_flight: bool = False


@dataclass
class QueuedRow:
    """A claimed row read after its locks: what the dispatcher decides on and sends."""

    id: uuid.UUID
    connector_id: uuid.UUID
    organization_id: uuid.UUID
    task_id: uuid.UUID | None
    idempotency_key: str
    recipient: str
    request: dict[str, Any]
    attempts: int
    attempt_key: str | None
    last_error: str | None
    status: str
    created_at: datetime
    connector_status: str
    #: ``(reason, since)`` of the recipient's active suppression in the row's organization.
    suppressed: tuple[str, datetime] | None
    priority: Priority = Priority.BULK
    #: Why the reputation guard holds this bulk row (a paused scope of it), or None.
    held: str | None = None
    #: Why this transactional row goes at its organization's small rate (a paused scope), or None.
    paused: str | None = None


@dataclass(frozen=True)
class RowChange:
    """The new state of one row: status, attempts added, retry or lease time, reason."""

    id: uuid.UUID
    status: str
    attempt: int = 0
    next_attempt_at: datetime | None = None
    error: str | None = None


@dataclass(frozen=True)
class Answer:
    """The recorded outcome of one row after a request (or its refusal)."""

    id: uuid.UUID
    status: str
    email_id: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    #: Give back the attempt this request counted (Resend refused it before doing anything).
    refund: bool = False
    #: Forget the unit: Resend never saw it, so the row may go again in any unit.
    forget_unit: bool = False


@dataclass(frozen=True)
class AloneClaim:
    """What :func:`claim_alone` found for a single email; :attr:`locked`: both its locks are held."""

    key_taken: bool
    queue_waiting: bool
    connector_status: str | None
    task_organization_id: uuid.UUID | None
    suppressed: bool
    locked: bool
    #: A bulk email of a scope the reputation guard paused, or a transactional one of a paused
    #: organization or connector (its small rate is taken there): it goes through the queue instead.
    held: bool = False


@dataclass(frozen=True)
class AloneRow:
    """A single email for the alone lane: its ledger row to be."""

    id: uuid.UUID
    idempotency_key: str
    organization_id: uuid.UUID
    connector_id: uuid.UUID
    task_id: uuid.UUID | None
    recipient: str
    subject: str
    request: dict[str, Any]
    #: The email's topic (None: it has none).
    topic: str | None = None
    priority: Priority = Priority.TRANSACTIONAL
    #: The caller's queue for outcome events, if it asked for them.
    outcomes_queue: str | None = None


def claim(
    conn: psycopg.Connection[Any], key: str, *, limit: int, now: datetime, orphaned_after: float
) -> Claim:
    """Due units of the API key ``key`` if any (retry time passed, or in flight for longer than
    ``orphaned_after`` seconds), else up to ``limit`` of its oldest ready rows, row-locked until the
    transaction ends, with their recipient locks tried."""
    due: list[str] = []
    rows: list[tuple[uuid.UUID, bool]] = []
    in_flight = False
    params = {"key": key, "limit": limit, "now": now, "orphaned": orphaned_after}
    for message_id, free, unit in conn.execute(_CLAIM, params):
        if unit == "":
            in_flight = True
        elif unit is not None:
            due.append(unit)
        else:
            rows.append((message_id, bool(free)))
    return Claim(due, rows, in_flight)


def claim_alone(conn: psycopg.Connection[Any], row: AloneRow, key: str, *, now: datetime) -> AloneClaim:
    """Whether ``row`` may skip the queue of API key ``key``, in one read; its recipient's lock and its
    unit's are tried, and held only when both are taken (released by :func:`record_answer` or
    :func:`unlock_all`)."""
    params = {
        "id": row.id,
        "ikey": row.idempotency_key,
        "key": key,
        "now": now,
        "connector": row.connector_id,
        "task": row.task_id,
        "org": row.organization_id,
        "email": row.recipient,
        "priority": row.priority.value,
        "topic": row.topic,
    }
    found = conn.execute(_CLAIM_ALONE, params).fetchone()
    assert found is not None  # a SELECT without FROM has one row
    taken, waiting, status, task_org, suppressed, held, recipient_locked, unit_locked = found
    if recipient_locked != unit_locked:
        unlock_all(conn)
    return AloneClaim(
        taken, waiting, status, task_org, suppressed, recipient_locked and unit_locked, held=bool(held)
    )


def start_alone(conn: psycopg.Connection[Any], row: AloneRow, key: str) -> datetime | None:
    """Write ``row`` in flight (``sending``, first attempt, under its own key) in the queue of ``key``;
    its creation time, or None when its key is taken or its recipient is suppressed (nothing written).

    Raises ValueError when the row's id is not derived from its key."""
    require_derived_ids([(row.id, row.idempotency_key)])
    params = {
        "id": row.id,
        "org": row.organization_id,
        "connector": row.connector_id,
        "task": row.task_id,
        "ikey": row.idempotency_key,
        "email": row.recipient,
        "subject": row.subject,
        "topic": row.topic,
        "request": Jsonb(row.request),
        "tags": None if (tags := caller_tags(row.request)) is None else Jsonb(tags),
        "key": key,
        "priority": row.priority,
        "outcomes": row.outcomes_queue,
    }
    found = ledger_keys.insert_new(conn, [row.id], _START_ALONE, params)
    return found[0][0] if found else None


def claim_ready(
    conn: psycopg.Connection[Any], key: str, *, limit: int, now: datetime
) -> list[tuple[uuid.UUID, bool]]:
    """Up to ``limit`` of the key's oldest ready rows, whatever units are due (none could be taken)."""
    params = {"key": key, "limit": limit, "now": now}
    return [(message_id, bool(free)) for message_id, free in conn.execute(_CLAIM_READY, params)]


def claim_unit(conn: psycopg.Connection[Any], unit: str) -> list[tuple[uuid.UUID, bool]] | None:
    """Every row of unit ``unit``, row-locked, with their recipient locks tried; None when another
    dispatcher holds the unit (a live one sending it, or one claiming it now)."""
    locked = conn.execute(_LOCK_UNIT, {"unit": unit}).fetchone()
    if not locked or not locked[0]:
        return None
    return [(message_id, bool(free)) for message_id, free in conn.execute(_CLAIM_UNIT, {"unit": unit})]


def read_claimed(
    conn: psycopg.Connection[Any], ids: Sequence[uuid.UUID], *, now: datetime
) -> list[QueuedRow]:
    """The rows ``ids`` as they are now, oldest first, with suppression and connector status."""
    if not ids:
        return []
    return [_queued_row(row) for row in conn.execute(_READ, {"ids": list(ids), "now": now})]


def _queued_row(row: tuple[Any, ...]) -> QueuedRow:
    message_id, connector_id, organization_id, task_id, key, recipient, request, attempts = row[:8]
    attempt_key, last_error, status, created_at, connector_status, reason, since, priority, held = row[8:17]
    return QueuedRow(
        message_id,
        connector_id,
        organization_id,
        task_id,
        key,
        recipient,
        request,
        attempts,
        attempt_key,
        last_error,
        status,
        created_at,
        connector_status,
        suppressed=None if reason is None else (reason, since),
        priority=Priority(priority),
        held=held,
        paused=row[17],
    )


def write_attempt(conn: psycopg.Connection[Any], changes: Sequence[RowChange], *, unit: str | None) -> None:
    """Write the claimed rows' new states (members ``sending`` under ``unit``) in one statement, and
    take the unit's lock for the connection (until :func:`record_answer`)."""
    if not changes:
        return
    conn.execute(
        _WRITE,
        {
            "unit": unit,
            "ids": [change.id for change in changes],
            "statuses": [change.status for change in changes],
            "attempts": [change.attempt for change in changes],
            "next": [change.next_attempt_at for change in changes],
            "errors": [change.error for change in changes],
        },
    )


def rekey(conn: psycopg.Connection[Any], ids: Sequence[uuid.UUID], key: str | None) -> None:
    """Move rows to the queue of API key ``key`` (their connector's key changed)."""
    if ids:
        conn.execute(_REKEY, {"key": key, "ids": list(ids)})


def record_answer(
    conn: psycopg.Connection[Any],
    answers: Sequence[Answer],
    *,
    at: datetime,
    usage: dict[uuid.UUID, int],
) -> None:
    """Write each row's outcome and the connectors' usage (``usage``: emails sent per connector, each
    charged one request), then release every lock of the connection (its recipients', its unit's)."""
    conn.execute(
        _ANSWER,
        {
            "ids": [answer.id for answer in answers],
            "statuses": [answer.status for answer in answers],
            "email_ids": [answer.email_id for answer in answers],
            "errors": [answer.error for answer in answers],
            "next": [answer.next_attempt_at for answer in answers],
            "refunds": [1 if answer.refund else 0 for answer in answers],
            "forget": [answer.forget_unit for answer in answers],
            "at": at,
            "hour": at.replace(minute=0, second=0, microsecond=0),
            "connectors": list(usage),
            "emails": list(usage.values()),
        },
    )


def unlock_all(conn: psycopg.Connection[Any]) -> None:
    """Release every advisory lock the connection holds (recipients', units')."""
    conn.execute("SELECT pg_advisory_unlock_all()")


def parked_ahead(
    conn: psycopg.Connection[Any], connector_id: uuid.UUID, *, now: datetime, priority: Priority
) -> int:
    """The connector's rows parked until after ``now`` that take its tokens before rows of
    ``priority`` parked now: every class's for bulk rows, only transactional ones for those."""
    classes = list(CLASS_ORDER[: CLASS_ORDER.index(priority) + 1])
    found = conn.execute(
        _PARKED_AHEAD, {"connector": connector_id, "now": now, "classes": classes}
    ).fetchone()
    return int(found[0]) if found else 0
