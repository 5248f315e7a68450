"""Publish the outbox of outcome events (``outcome_events``) to each caller's queue as ``pilot.outcome``.

Rows are locked (``SKIP LOCKED``), published, then marked in the same transaction: a crash between
the two publishes them again (at least once; the event id, also the message's task id, deduplicates).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from marketing_pilot_client.contract import OUTCOME
from marketing_pilot_client.outcomes import OutcomeEvent, OutcomeKind
from marketing_pilot_client.payloads import RESERVED_TAGS
from shared.db import raw_connection, transaction
from shared.task_producer import TaskSender

logger = logging.getLogger(__name__)

#: Events one run publishes at most (the next run takes the rest).
MAX_EVENTS_PER_RUN = 1000
#: The keys the worker derives itself (``shared.sending.rendering.message_key``): no caller key.
_DERIVED_KEY = re.compile(r"^pilot/[0-9a-f-]{36}/[^/]*/[0-9a-f]{16}/[0-9a-f]{32}$")

# A reputation event names no ledger row: its scope names its connector or its task (campaign). The row
# is looked up per event (no foreign key to the partitioned ledger tells the planner there is one).
_CLAIM = """
SELECT o.id, o.kind, o.occurred_at, o.until, o.reason, o.queue, m.id, m.recipient,
       coalesce(m.connector_id, CASE WHEN o.scope = 'connector' THEN o.scope_id END),
       coalesce(m.task_id, CASE WHEN o.scope = 'campaign' THEN o.scope_id END),
       m.idempotency_key, m.tags, m.resend_email_id,
       o.organization_id, o.scope, o.scope_id, o.rates, o.created_at
FROM outcome_events o
LEFT JOIN LATERAL (SELECT * FROM email_messages WHERE id = o.message_id LIMIT 1) m ON true
WHERE o.published_at IS NULL
ORDER BY o.created_at
LIMIT %(limit)s
FOR UPDATE OF o SKIP LOCKED
"""
# The claimed events were written at or after the oldest of them: the partitions before it are skipped.
_MARK = "UPDATE outcome_events SET published_at = now() WHERE id = ANY(%(ids)s) AND created_at >= %(oldest)s"
_CREATED_AT = 17
_UNPUBLISHED = "SELECT count(*) FROM outcome_events WHERE published_at IS NULL"


def publish_pending(
    factory: sessionmaker[Session], sender: TaskSender, *, limit: int = MAX_EVENTS_PER_RUN
) -> int:
    """Publish up to ``limit`` unpublished events, oldest first; how many were published. A publish that
    fails stops the run: what was published is marked, the rest waits for the next run."""
    published = []
    with transaction(factory) as session:
        conn = raw_connection(session)
        claimed = claim_events(conn, limit=limit)
        try:
            for row in claimed:
                event, queue = _event(row), row[5]
                sender.send_task(
                    OUTCOME, kwargs=event.model_dump(mode="json"), queue=queue, task_id=str(event.event_id)
                )
                published.append(event.event_id)
        except Exception as exc:  # the broker is away: keep what was published, retry the rest later
            logger.warning("outcome events: publish failed after %d: %s", len(published), type(exc).__name__)
        if published:
            conn.execute(_MARK, {"ids": published, "oldest": claimed[0][_CREATED_AT]})
    if published:
        logger.info("outcome events: published %d", len(published))
    return len(published)


def claim_events(conn: psycopg.Connection[Any], *, limit: int) -> list[tuple[Any, ...]]:
    """Up to ``limit`` unpublished events, oldest first, row-locked (those locked by another run are
    skipped), each with its ledger row's fields (``_event`` reads them)."""
    return conn.execute(_CLAIM, {"limit": limit}).fetchall()


def unpublished_count(session: Session) -> int:
    """How many written events wait to be published."""
    count: int = session.execute(text(_UNPUBLISHED)).scalar_one()
    return count


def caller_key(idempotency_key: str) -> str | None:
    """The caller's own ``idempotency_key`` behind a row's key (``<caller key>/<recipient hash>``)."""
    if _DERIVED_KEY.match(idempotency_key):
        return None
    return idempotency_key.rsplit("/", 1)[0]


def _event(row: tuple[Any, ...]) -> OutcomeEvent:
    event_id, kind, occurred_at, until, reason, _, message_id, recipient, connector_id = row[:9]
    task_id, key, tags, resend_id, organization_id, scope, scope_id, rates = row[9:_CREATED_AT]
    metadata = {
        str(tag["name"]): str(tag["value"])
        for tag in tags or []
        if isinstance(tag, dict) and tag.get("name") not in RESERVED_TAGS
    }
    return OutcomeEvent(
        event_id=event_id,
        kind=OutcomeKind(kind),
        occurred_at=occurred_at,
        message_id=message_id,
        recipient=recipient,
        connector_id=connector_id,
        task_id=task_id,
        idempotency_key=caller_key(key) if key is not None else None,
        metadata=metadata,
        until=until,
        reason=reason,
        resend_id=resend_id,
        organization_id=organization_id,
        scope=scope,
        scope_id=scope_id,
        rates=rates,
    )
