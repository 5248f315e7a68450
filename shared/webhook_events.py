"""Stored webhook events as operators see them: how many wait or were kept as orphans, which they are,
and which to process again (``pilot status``, ``pilot events list / replay``, the demo's report)."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.orm import Session

from shared.errors import PayloadInvalid
from shared.models import ORPHAN_PREFIX, WebhookEvent

#: Events ``pilot events list`` shows when not told how many.
DEFAULT_LIST_LIMIT = 50


class EventState(enum.StrEnum):
    """Where a stored event is: applied, kept as an orphan, waiting its turn, or failing (retried)."""

    PROCESSED = "processed"
    ORPHANED = "orphaned"
    WAITING = "waiting"
    FAILING = "failing"

    def condition(self) -> ColumnElement[bool]:
        """The SQL condition of events in this state."""
        unprocessed = WebhookEvent.processed_at.is_(None)
        match self:
            case EventState.PROCESSED:
                return and_(WebhookEvent.processed_at.is_not(None), ~_orphaned_or_false())
            case EventState.ORPHANED:
                return WebhookEvent.orphaned()
            case EventState.WAITING:
                return and_(unprocessed, WebhookEvent.error.is_(None))
            case EventState.FAILING:
                return and_(unprocessed, WebhookEvent.error.is_not(None), ~_orphaned_or_false())

    @classmethod
    def of(cls, event: WebhookEvent) -> EventState:
        """The state of one event row."""
        if event.error is not None and event.error.startswith(ORPHAN_PREFIX):
            return cls.ORPHANED
        if event.processed_at is not None:
            return cls.PROCESSED
        return cls.WAITING if event.error is None else cls.FAILING


def _orphaned_or_false() -> ColumnElement[bool]:
    # ``error`` is NULL for most events: NOT (NULL LIKE ...) would be NULL, not true.
    return func.coalesce(WebhookEvent.orphaned(), False)


def list_events(
    session: Session,
    *,
    state: EventState | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
    limit: int = DEFAULT_LIST_LIMIT,
) -> list[WebhookEvent]:
    """The newest stored events first, at most ``limit``, of ``state`` and ``event_type``, received
    at or after ``since`` (each filter only when given)."""
    query = select(WebhookEvent)
    if state is not None:
        query = query.where(state.condition())
    if event_type is not None:
        query = query.where(WebhookEvent.type == event_type)
    if since is not None:
        query = query.where(WebhookEvent.received_at >= since.replace(tzinfo=since.tzinfo or UTC))
    query = query.order_by(WebhookEvent.received_at.desc(), WebhookEvent.id).limit(limit)
    return list(session.scalars(query))


@dataclass(frozen=True)
class EventCounts:
    """Stored events: all, processed, and kept as orphans (processed, their email never found)."""

    stored: int
    processed: int
    orphaned: int

    @property
    def waiting(self) -> int:
        """Events not processed yet."""
        return self.stored - self.processed


def event_counts(session: Session) -> EventCounts:
    """How many events are stored, processed and kept as orphans."""
    stored, processed, orphaned = session.execute(
        select(
            func.count(), func.count(WebhookEvent.processed_at), func.count().filter(WebhookEvent.orphaned())
        )
    ).one()
    return EventCounts(int(stored), int(processed), int(orphaned))


@dataclass(frozen=True)
class EventBacklog:
    """Events not processed yet and events kept as orphans, each counted through its partial index
    (``pilot status``: never a read of every stored event)."""

    waiting: int
    orphaned: int


def event_backlog(session: Session) -> EventBacklog:
    """How many events wait (not processed yet, failing ones included) and are kept as orphans."""
    waiting = session.scalar(select(func.count()).where(WebhookEvent.processed_at.is_(None)))
    orphaned = session.scalar(select(func.count()).where(WebhookEvent.orphaned()))
    return EventBacklog(int(waiting or 0), int(orphaned or 0))


def reopen_for_replay(
    session: Session,
    *,
    event_ids: Sequence[str] = (),
    orphans: bool = False,
    unprocessed: bool = False,
    since: datetime | None = None,
) -> list[uuid.UUID]:
    """Mark the chosen events unprocessed again, with their attempts and error cleared (in ``session``'s
    transaction); their ids, to enqueue once committed. The choices add up: every condition given holds.

    Raises :class:`PayloadInvalid` when nothing is chosen or an id is not a UUID.
    """
    conditions = _chosen(event_ids, orphans=orphans, unprocessed=unprocessed, since=since)
    ids = list(session.scalars(select(WebhookEvent.id).where(*conditions)))
    session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.id.in_(ids))
        .values(processed_at=None, error=None, attempts=0)
        .execution_options(synchronize_session=False)
    )
    return ids


def _chosen(
    event_ids: Sequence[str], *, orphans: bool, unprocessed: bool, since: datetime | None
) -> list[Any]:
    if not (event_ids or orphans or unprocessed or since):
        raise PayloadInvalid("name event ids, or choose --orphans, --unprocessed or --since")
    conditions: list[Any] = []
    if event_ids:
        try:
            parsed = [uuid.UUID(value) for value in event_ids]
        except ValueError:
            raise PayloadInvalid("event ids must be UUIDs (the id column of webhook_events)") from None
        conditions.append(WebhookEvent.id.in_(parsed))
    if orphans:
        conditions.append(WebhookEvent.orphaned())
    if unprocessed:
        conditions.append(WebhookEvent.processed_at.is_(None))
    if since:
        conditions.append(WebhookEvent.received_at >= since.replace(tzinfo=since.tzinfo or UTC))
    return conditions
