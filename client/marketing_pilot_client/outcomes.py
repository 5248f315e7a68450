"""Outcome events: what happened to each recipient of a send, published back to the caller.

A send that names ``outcomes_queue`` gets one ``pilot.outcome`` task message per event on that queue,
at least once (deduplicate by ``event_id``); the reputation guard's changes of the organization,
connector and campaign it was counted in come there too (``reputation_*``, no recipient).
:func:`iter_outcomes` reads them without a worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from celery import Celery
from pydantic import BaseModel, ConfigDict, Field

from marketing_pilot_client.contract import OUTCOME


class OutcomeKind(StrEnum):
    """What happened to one recipient (``reputation_*``: to a sender's reputation)."""

    QUEUED = "queued"
    SENT = "sent"
    DEFERRED = "deferred"
    SUPPRESSED = "suppressed"
    FAILED = "failed"
    DELIVERED = "delivered"
    DELIVERY_DELAYED = "delivery_delayed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    OPENED = "opened"
    CLICKED = "clicked"
    UNSUBSCRIBED = "unsubscribed"
    #: Waits in the ledger for its ``scheduled_at`` (``until``).
    SCHEDULED = "scheduled"
    #: Withdrawn before it left (``reason`` says by whom).
    CANCELLED = "cancelled"
    #: The reputation guard's state of a ``scope`` of the sender changed (no recipient: ``rates``,
    #: ``reason``): its bounce or complaint rate crossed the warning level; the pause level (its bulk
    #: mail waits); a warning's rates dropped back; an operator resumed a paused scope.
    REPUTATION_WARNING = "reputation_warning"
    REPUTATION_PAUSED = "reputation_paused"
    REPUTATION_OK = "reputation_ok"
    REPUTATION_RESUMED = "reputation_resumed"


class OutcomeEvent(BaseModel):
    """The kwargs of one ``pilot.outcome`` message."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    #: Stable: the same event published again carries the same id.
    event_id: uuid.UUID
    kind: OutcomeKind
    occurred_at: datetime
    #: The ledger row (one recipient of one send); None for ``reputation_*`` events.
    message_id: uuid.UUID | None = None
    recipient: str | None = None
    connector_id: uuid.UUID | None = None
    task_id: uuid.UUID | None = None
    idempotency_key: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    #: ``deferred``: when the next attempt is due; ``scheduled``: when the email leaves.
    until: datetime | None = None
    #: ``failed``, ``suppressed``, ``deferred`` and ``bounced``: why; ``cancelled``: by whom.
    reason: str | None = None
    #: The Resend email id, once sent.
    resend_id: str | None = None
    #: ``reputation_*``: the organization, and the scope judged (``connector``: ``connector_id``;
    #: ``campaign``: ``task_id``).
    organization_id: uuid.UUID | None = None
    scope: Literal["organization", "connector", "campaign"] | None = None
    scope_id: uuid.UUID | None = None
    #: ``reputation_*``: the scope's window (recipients, hard_bounces, complaints, bounce_rate,
    #: complaint_rate) when it changed.
    rates: dict[str, int | float | None] | None = None


def register_outcome_handler(app: Celery, handler: Callable[[OutcomeEvent], object]) -> Any:
    """Register task ``pilot.outcome`` on ``app``, calling ``handler`` with each event; run a worker of
    ``app`` on your ``outcomes_queue`` to consume them. The Celery task is returned."""

    def outcome(**kwargs: Any) -> None:
        handler(OutcomeEvent.model_validate(kwargs))

    return app.task(name=OUTCOME, acks_late=True)(outcome)


def iter_outcomes(app: Celery, queue: str, *, timeout: float = 5.0) -> Iterator[OutcomeEvent]:
    """The outcome events waiting on ``queue``, each acknowledged once yielded; stops after ``timeout``
    seconds without one. (An upstream Celery worker can instead register a task named ``pilot.outcome``.)"""
    with app.connection_for_read() as connection:
        simple = connection.SimpleQueue(queue, no_ack=False)
        try:
            while True:
                try:
                    message = simple.get(block=True, timeout=timeout)
                except simple.Empty:
                    return
                event = _event_of(message.headers or {}, message.payload)
                message.ack()
                if event is not None:
                    yield event
        finally:
            simple.close()


def _event_of(headers: dict[str, Any], body: Any) -> OutcomeEvent | None:
    if headers.get("task") != OUTCOME or not isinstance(body, list | tuple) or len(body) < 2:
        return None
    return OutcomeEvent.model_validate(body[1])
