"""Celery entry points for webhook events: thin adapters over :mod:`worker.events.processing`.

``pilot.process_webhook_event(event_id)`` is enqueued by the receiver after it stored the event.
:func:`process_pending_events` is the safety net the sweep calls: events stored while the broker was
down (or whose task was lost) are enqueued again from PostgreSQL, the source of truth.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import shared_task
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared import task_names
from shared.backoff import compute_backoff
from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import WebhookEvent
from shared.settings import get_settings
from worker import metrics
from worker.events import processing

logger = logging.getLogger(__name__)

#: The sweep leaves events this young to the task already enqueued for them.
PENDING_GRACE = timedelta(seconds=60)
#: Events that failed this often are left for a human (their ``error`` says why).
PENDING_MAX_ATTEMPTS = 25
PENDING_BATCH = 500


@functools.cache
def _session_factory() -> sessionmaker[Session]:
    # Built on first use in the worker child, never at import (prefork forks after import).
    return make_sessionmaker(make_engine(get_settings()))


@shared_task(name=task_names.PROCESS_WEBHOOK_EVENT, bind=True, max_retries=None, acks_late=True)
def process_webhook_event(self: Any, event_ids: str | list[str]) -> dict[str, int]:
    """Apply stored webhook event(s): one id, or a list (the receiver batches its publishes).

    Events whose email is not in the ledger yet, or that met a database outage, are retried alone;
    any other failure is recorded on the event and left to the sweep. Returns outcome counts.
    """
    ids = [event_ids] if isinstance(event_ids, str) else list(event_ids)
    outcomes, retry = process_batch(_session_factory(), ids)
    if retry:
        raise self.retry(args=[retry], countdown=compute_backoff(self.request.retries + 1))
    return outcomes


def process_batch(
    session_factory: sessionmaker[Session], event_ids: list[str]
) -> tuple[dict[str, int], list[str]]:
    """Process the events in one transaction; returns outcome counts and the ids to retry.

    If that transaction fails (a database error, a deadlock, one event that cannot be applied), the
    events are processed again one transaction each, so one bad event fails alone and is recorded.
    """
    ids = _parsed_ids(event_ids)
    if ids is not None:
        try:
            batch = processing.process_events(session_factory, ids)
        except Exception as exc:
            logger.warning("batch of %d webhook events failed (%s); one by one", len(ids), type(exc).__name__)
        else:
            metrics.observe_reputation(batch.reputation)
            retry = [str(event_id) for event_id in batch.not_in_ledger]
            outcomes = Counter(outcome.kind for outcome in batch.outcomes.values())
            outcomes.update({"retry": len(retry)} if retry else {})
            return dict(outcomes), retry
    return process_one_by_one(session_factory, event_ids)


def process_one_by_one(
    session_factory: sessionmaker[Session], event_ids: list[str]
) -> tuple[dict[str, int], list[str]]:
    """Process each event in its own transaction; returns outcome counts and the ids to retry."""
    outcomes: dict[str, int] = {}
    retry: list[str] = []
    for event_id in event_ids:
        try:
            outcome = processing.process_event(session_factory, uuid.UUID(event_id))
            metrics.observe_reputation(outcome.reputation)
            kind = outcome.kind
        except (processing.NotInLedgerYet, OperationalError):
            retry.append(event_id)
            kind = "retry"
        except Exception:
            # Recorded on the event by process_event; the sweep tries again later.
            logger.exception("webhook event %s failed", event_id)
            kind = "error"
        outcomes[kind] = outcomes.get(kind, 0) + 1
    return outcomes, retry


def _parsed_ids(event_ids: list[str]) -> list[uuid.UUID] | None:
    """The ids as UUIDs, or ``None`` if any is not one (the one-by-one path reports it alone)."""
    try:
        return list(dict.fromkeys(uuid.UUID(event_id) for event_id in event_ids))
    except ValueError:
        return None


def process_pending_events(
    session_factory: sessionmaker[Session],
    enqueue: Callable[[str], object],
    *,
    now: datetime | None = None,
    grace: timedelta = PENDING_GRACE,
    limit: int = PENDING_BATCH,
) -> int:
    """Enqueue stored events still unprocessed after ``grace``; returns how many were enqueued.

    ``enqueue(event_id)`` sends ``pilot.process_webhook_event``; processing is idempotent, so an
    event enqueued twice (its own retry plus the sweep) is harmless.
    """
    cutoff = (now or datetime.now(UTC)) - grace
    with transaction(session_factory) as session:
        ids = session.scalars(
            select(WebhookEvent.id)
            .where(WebhookEvent.processed_at.is_(None))
            .where(WebhookEvent.received_at < cutoff)
            .where(WebhookEvent.attempts < PENDING_MAX_ATTEMPTS)
            .order_by(WebhookEvent.received_at)
            .limit(limit)
        ).all()
    for event_id in ids:
        enqueue(str(event_id))
    if ids:
        logger.info("sweep re-enqueued %d unprocessed webhook events", len(ids))
    return len(ids)
