"""Rebuild a task's figures from scratch: its ledger rows by status, its rows' marks, its delivery figures.

The incremental figures must always equal what this computes (``pilot tasks recount`` says when they
did not). The task row is locked first; each statement after the lock sees every commit before it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, distinct, func, select, text
from sqlalchemy.orm import Session

from shared.counters import delivery
from shared.counters.delivery import HARD_BOUNCE, MARKS, UNIQUE
from shared.db import raw_connection
from shared.models import EmailMetric
from shared.resend_events import EventType as E

_LOCK_TASK = text("SELECT execution_result FROM tasks WHERE id = :task FOR NO KEY UPDATE")
#: The task's ledger rows by status (read through the task's index on the ledger).
RECOUNT_SENDS = "SELECT status, count(*) FROM email_messages WHERE task_id = %(task)s GROUP BY status"
_HARD = EmailMetric.metadata_["bounce_type"].astext == "Permanent"


def _messages(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.count(distinct(EmailMetric.message_id)).filter(condition)


_CONDITIONS: dict[str, ColumnElement[bool]] = {
    **{name: EmailMetric.event == event.value for event, name in UNIQUE.items()},
    HARD_BOUNCE: (EmailMetric.event == E.BOUNCED.value) & _HARD,
    delivery.UNSUBSCRIBED: EmailMetric.event == E.UNSUBSCRIBED.value,
}
_COUNTS: dict[str, ColumnElement[int]] = {
    **{name: _messages(_CONDITIONS[name]) for name in (*UNIQUE.values(), HARD_BOUNCE)},
    "opened_total": func.count().filter(EmailMetric.event == E.OPENED.value),
    "clicked_total": func.count().filter(EmailMetric.event == E.CLICKED.value),
    "events": func.count(),
}
_BITS = [func.coalesce(func.bit_or(1 << bit).filter(_CONDITIONS[kind]), 0) for bit, kind in enumerate(MARKS)]
_UNSUBSCRIBED = text(
    "SELECT metadata->>'email_topic', count(DISTINCT metadata->>'message_id') FROM email_metrics"
    " WHERE task_id = :task AND event = 'unsubscribed' GROUP BY 1"
)
_UNSUBSCRIBED_TOTAL = text(
    "SELECT count(DISTINCT metadata->>'message_id') FROM email_metrics"
    " WHERE task_id = :task AND event = 'unsubscribed'"
)
_FORGET_MARKS = text(
    "UPDATE message_marks SET kinds = 0"
    " WHERE message_id IN (SELECT id FROM email_messages WHERE task_id = :task) AND kinds <> 0"
)
# A mark lives in its ledger row's month: rows of messages no longer in the ledger have none.
_WRITE_MARKS = text(
    "INSERT INTO message_marks (message_id, message_created_at, kinds) SELECT m.id, m.created_at, v.k"
    " FROM unnest(CAST(:messages AS text[]), CAST(:kinds AS int[])) AS v(id, k)"
    " JOIN email_messages m ON m.id = CAST(v.id AS uuid)"
    " ON CONFLICT (message_id, message_created_at) DO UPDATE SET kinds = excluded.kinds"
)
_STORE = text(
    """
UPDATE tasks SET execution_result = (execution_result - 'sends' - 'delivery')
    || CAST(:figures AS jsonb)
WHERE id = :task
"""
)


@dataclass(frozen=True)
class Recount:
    """A task's figures before and after a recount."""

    task_id: uuid.UUID
    before: dict[str, Any]
    after: dict[str, Any]

    @property
    def changed(self) -> bool:
        return self.before != self.after


def sends(session: Session, task_id: uuid.UUID) -> dict[str, int] | None:
    """The task's ledger rows by status and in all (None: it has none)."""
    rows = raw_connection(session).execute(RECOUNT_SENDS, {"task": task_id})
    counted = {status: int(n) for status, n in rows}
    return {**counted, "total": sum(counted.values())} if counted else None


def delivery_figures(session: Session, task_id: uuid.UUID) -> dict[str, Any] | None:
    """The task's delivery figures from all its metric rows (None: it has none)."""
    labelled = [column.label(name) for name, column in _COUNTS.items()]
    row = session.execute(select(*labelled).where(EmailMetric.task_id == task_id)).one()
    counts = {name: int(value or 0) for name, value in row._mapping.items()}
    if not counts["events"]:
        return None
    params = {"task": task_id}
    by_topic = {topic: int(n) for topic, n in session.execute(_UNSUBSCRIBED, params) if topic}
    total = int(session.execute(_UNSUBSCRIBED_TOTAL, params).scalar() or 0)
    return delivery.stored_figures({name: counts[name] for name in delivery.COUNTS}, total, by_topic)


def _rebuild_marks(session: Session, task_id: uuid.UUID) -> None:
    session.execute(_FORGET_MARKS, {"task": task_id})
    marks = session.execute(
        select(EmailMetric.message_id, _mark_of_rows())
        .where(EmailMetric.task_id == task_id, EmailMetric.message_id.is_not(None))
        .group_by(EmailMetric.message_id)
    ).all()
    if marks:
        params = {"messages": [str(m) for m, _ in marks], "kinds": [int(k) for _, k in marks]}
        session.execute(_WRITE_MARKS, params)


def _mark_of_rows() -> ColumnElement[int]:
    """A group of metric rows' mark: the bits of every kind among them."""
    combined: ColumnElement[int] = _BITS[0]
    for bits in _BITS[1:]:
        combined = combined.op("|")(bits)
    return combined


def _figures(result: dict[str, Any]) -> dict[str, Any]:
    return {key: result[key] for key in ("sends", "delivery") if key in result}


def recount_task(session: Session, task_id: uuid.UUID) -> Recount | None:
    """Rebuild the task's figures and its rows' marks (in the caller's transaction); None: no such task."""
    stored = session.execute(_LOCK_TASK, {"task": task_id}).scalar()
    if stored is None:
        return None
    figures: dict[str, Any] = {}
    counted = sends(session, task_id)
    if counted is not None:
        figures["sends"] = counted
    _rebuild_marks(session, task_id)
    found = delivery_figures(session, task_id)
    if found is not None:
        figures["delivery"] = found
    session.execute(_STORE, {"task": task_id, "figures": json.dumps(figures)})
    return Recount(task_id, _figures(stored), figures)
