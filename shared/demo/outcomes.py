"""The shop's outcome events, read from its outcomes queue as an upstream app reads them.

Every demo send names the shop's queue (``campaign.OUTCOMES_QUEUE``), so the reputation guard's
changes of the scopes those sends were counted in (``reputation_*``) arrive there too, among the
recipients' events.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from marketing_pilot_client.outcomes import OutcomeEvent, iter_outcomes
from shared.demo.campaign import OUTCOMES_QUEUE
from shared.outcome_publisher import unpublished_count

#: How long to wait for beat's ``pilot.publish_outcomes`` (every 2 s) to publish what is written.
PUBLISH_TIMEOUT_S = 15.0
#: The queue is read until no event came for this long.
READ_IDLE_S = 0.5
REPUTATION_PREFIX = "reputation_"


def read(factory: sessionmaker[Session], broker_url: str) -> dict[str, Any]:
    """Wait until every written event is published, then take the queue's events: how many of each
    kind, and the reputation events in the order they happened."""
    deadline = time.monotonic() + PUBLISH_TIMEOUT_S
    while time.monotonic() < deadline:
        with factory() as session:
            if unpublished_count(session) == 0:
                break
        time.sleep(0.5)
    app = Celery("demo-shop", broker=broker_url)
    try:
        events = list(iter_outcomes(app, OUTCOMES_QUEUE, timeout=READ_IDLE_S))
    finally:
        app.close()
    return _summary(events)


def _summary(events: list[OutcomeEvent]) -> dict[str, Any]:
    """Counts by kind, and each reputation event once (a republished one has the same id)."""
    unique = list({event.event_id: event for event in events}.values())
    reputation = sorted(
        (event for event in unique if event.kind.startswith(REPUTATION_PREFIX)),
        key=lambda event: (event.occurred_at, event.scope or ""),
    )
    return {
        "queue": OUTCOMES_QUEUE,
        "counts": dict(Counter(event.kind.value for event in unique).most_common()),
        "reputation": [
            {
                "kind": event.kind.value,
                "scope": event.scope,
                "reason": event.reason,
                "occurred_at": event.occurred_at.isoformat(),
            }
            for event in reputation
        ],
    }
