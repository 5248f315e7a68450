"""The guard's state changes as outcome events, to the upstream apps whose sends the scope counted.

A scope remembers the outcome-event queues its counted rows named (``reputation_states``); each change
writes one ``reputation_*`` event per queue into the outbox, in the change's own transaction, and
``pilot.publish_outcomes`` publishes them with the recipients' events.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import exists, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from marketing_pilot_client.outcomes import OutcomeKind
from shared.models import OutcomeEvent, ReputationState, ReputationStatus

#: A scope tells at most this many queues (the latest ones its rows named).
MAX_QUEUES = 16
#: The event a change to each state is.
KIND_OF = {
    ReputationState.WARNING: OutcomeKind.REPUTATION_WARNING,
    ReputationState.PAUSED: OutcomeKind.REPUTATION_PAUSED,
    ReputationState.OK: OutcomeKind.REPUTATION_OK,
}
_NAMESPACE = uuid.UUID("5d0c8d4e-2f7a-4c1e-9b6a-7c3f0e1a9b42")


def remember_queues(status: ReputationStatus, queues: Iterable[str]) -> None:
    """Add ``queues`` to those the scope tells (the latest :data:`MAX_QUEUES`)."""
    known = list(status.outcome_queues or [])
    merged = list(dict.fromkeys([*known, *sorted(set(queues) - set(known))]))[-MAX_QUEUES:]
    if merged != known:
        status.outcome_queues = merged


def record_change(
    session: Session,
    status: ReputationStatus,
    kind: OutcomeKind,
    *,
    at: datetime,
    reason: str | None,
    rates: dict[str, Any],
) -> int:
    """Write a ``kind`` event of the scope for each queue it tells; how many were written."""
    queues = list(status.outcome_queues or [])
    for queue in queues:
        event_id = uuid.uuid5(_NAMESPACE, f"{status.scope_id}/{kind}/{at.isoformat()}/{queue}")
        values = {
            "id": event_id,
            "queue": queue,
            "kind": kind.value,
            "occurred_at": at,
            "reason": reason,
            "organization_id": status.organization_id,
            "scope": status.scope,
            "scope_id": status.scope_id,
            "rates": rates,
        }
        session.execute(_insert_once(values))
    return len(queues)


def _insert_once(values: dict[str, Any]) -> Any:
    # The outbox is partitioned by created_at: no unique key on the id alone. Written only when no
    # partition holds the id (the scope's locked status serializes its writers; rare: every partition
    # is asked).
    columns = OutcomeEvent.__table__.c
    already = exists().where(columns.id == values["id"])
    row = select(*(literal(value, type_=columns[name].type) for name, value in values.items()))
    return insert(OutcomeEvent).from_select(list(values), row.where(~already)).on_conflict_do_nothing()
