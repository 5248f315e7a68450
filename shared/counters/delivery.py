"""A task's delivery figures, kept as metric rows are written: what each row adds, once.

Every metric row adds to ``events`` (an open or a click also to ``opened_total``/``clicked_total``);
the first row of a kind for a ledger row adds to that kind's count of rows, and the row's mark in
``message_marks.kinds`` (a bit per kind) remembers it, whatever the order or repeats of its events. Marks,
then tasks, are written at the end of a transaction in id order, so racing workers never deadlock.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.resend_events import EventType as E

#: Counts of ledger rows with at least one event of the kind.
UNIQUE = {
    E.SENT: "sent",
    E.DELIVERED: "delivered",
    E.OPENED: "opened_unique",
    E.CLICKED: "clicked_unique",
    E.BOUNCED: "bounced",
    E.COMPLAINED: "complained",
    E.DELIVERY_DELAYED: "delayed",
    E.SUPPRESSED: "suppressed",
    E.FAILED: "failed",
}
HARD_BOUNCE = "bounced_hard"
UNSUBSCRIBED = "unsubscribed"
#: A mark's bits: bit i is the i-th kind.
MARKS = (*UNIQUE.values(), HARD_BOUNCE, UNSUBSCRIBED)
#: Counts of metric rows.
TOTALS = {E.OPENED: "opened_total", E.CLICKED: "clicked_total"}
#: The counts of ``execution_result["delivery"]`` beside the rates and the unsubscribe figures.
COUNTS = (
    "sent",
    "delivered",
    "opened_unique",
    "opened_total",
    "clicked_unique",
    "clicked_total",
    "bounced",
    HARD_BOUNCE,
    "complained",
    "delayed",
    "suppressed",
    "failed",
    "events",
)
#: Rates with their numerator and denominator named, so a reader knows what "open rate" means here.
RATES = {
    "delivery_rate": ("delivered", "sent"),
    "bounce_rate": ("bounced", "sent"),
    "complaint_rate": ("complained", "delivered"),
    "open_rate": ("opened_unique", "delivered"),
    "click_rate": ("clicked_unique", "delivered"),
    "click_to_open_rate": ("clicked_unique", "opened_unique"),
}

# Sets one bit; a row comes back only when the bit was not set (a concurrent writer of the same bit
# waits for the first, then finds it set).
_MARK = text(
    """
INSERT INTO message_marks (message_id, message_created_at, kinds) VALUES (:message, :created, :bit)
ON CONFLICT (message_id, message_created_at) DO UPDATE SET kinds = message_marks.kinds | excluded.kinds
    WHERE message_marks.kinds & excluded.kinds = 0
RETURNING message_id
"""
)
_LOCK_TASK = text("SELECT execution_result -> 'delivery' FROM tasks WHERE id = :task FOR NO KEY UPDATE")
# `||` merges at the top level: the other keys of execution_result stay intact.
_STORE = text(
    "UPDATE tasks SET execution_result = execution_result"
    " || jsonb_build_object('delivery', CAST(:figures AS jsonb)) WHERE id = :task"
)


def kinds(event: str, bounce_type: str | None = None) -> list[str]:
    """The kinds a metric row of ``event`` counts its ledger row in (if it is the row's first of each)."""
    found = [UNIQUE[E(event)]] if event in UNIQUE else []
    if event == E.BOUNCED and bounce_type == "Permanent":
        found.append(HARD_BOUNCE)
    if event == E.UNSUBSCRIBED:
        found.append(UNSUBSCRIBED)
    return found


@dataclass(frozen=True)
class MetricRow:
    """A metric row just written for a ledger row of a task (what its figures need of it)."""

    message_id: uuid.UUID
    task_id: uuid.UUID
    #: The ledger row's ``created_at``: its mark lives in that month (``message_marks``).
    message_created_at: datetime
    event: str
    bounce_type: str | None = None
    #: The email's topic ('' for none), for unsubscribes.
    email_topic: str = ""


@dataclass
class Figures:
    """Metric rows written in this transaction, to be counted by :func:`apply`."""

    rows: list[MetricRow] = field(default_factory=list)

    def add(self, row: MetricRow) -> None:
        self.rows.append(row)


def delivery_metrics(counts: dict[str, int]) -> dict[str, Any]:
    """Counts plus rates (``value`` is ``None`` while the denominator is zero)."""
    rates = {}
    for name, (numerator, denominator) in RATES.items():
        below = counts[denominator]
        value = round(counts[numerator] / below, 4) if below else None
        rates[name] = {"value": value, "numerator": numerator, "denominator": denominator}
    return {**counts, "rates": rates, "source": "email_metrics"}


def stored_figures(counts: dict[str, int], unsubscribed: int, by_topic: dict[str, int]) -> dict[str, Any]:
    """What ``execution_result["delivery"]`` holds: counts, rates and the unsubscribe figures."""
    topics = {topic: n for topic, n in sorted(by_topic.items()) if topic and n}
    return {**delivery_metrics(counts), "unsubscribed": unsubscribed, "unsubscribed_by_topic": topics}


def apply(session: Session, figures: Figures) -> list[uuid.UUID]:
    """Count ``figures``' rows: marks in ledger-row order, then each task's figures in id order (one
    locked read and one write each); returns the tasks written."""
    counts: dict[uuid.UUID, Counter[str]] = defaultdict(Counter)
    topics: dict[uuid.UUID, Counter[str]] = defaultdict(Counter)
    for row in sorted(figures.rows, key=lambda row: row.message_id):
        added = counts[row.task_id]
        added["events"] += 1
        if row.event in TOTALS:
            added[TOTALS[E(row.event)]] += 1
        for kind in kinds(row.event, row.bounce_type):
            bit = 1 << MARKS.index(kind)
            params = {"message": row.message_id, "created": row.message_created_at, "bit": bit}
            if session.execute(_MARK, params).first() is None:
                continue
            added[kind] += 1
            if kind == UNSUBSCRIBED and row.email_topic:
                topics[row.task_id][row.email_topic] += 1
    figures.rows.clear()
    for task_id in sorted(counts):
        stored = session.execute(_LOCK_TASK, {"task": task_id}).scalar() or {}
        total = {name: int(stored.get(name, 0)) + counts[task_id][name] for name in COUNTS}
        by_topic = Counter({str(k): int(v) for k, v in stored.get("unsubscribed_by_topic", {}).items()})
        by_topic.update(topics[task_id])
        unsubscribed = int(stored.get(UNSUBSCRIBED, 0)) + counts[task_id][UNSUBSCRIBED]
        result = stored_figures(total, unsubscribed, dict(by_topic))
        session.execute(_STORE, {"task": task_id, "figures": json.dumps(result)})
    return sorted(counts)
