"""A task's delivery metrics, recomputed from ``email_metrics`` (never incremented blindly).

The result goes to ``tasks.execution_result["delivery"]``; the worker's own keys beside it are kept.
Recomputing from every row makes the figures idempotent: replays, retries and any arrival order give
the same numbers. Counts are of distinct messages, except ``opened_total`` and ``clicked_total``.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, distinct, func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from shared.models import EmailMetric, Task
from shared.resend_events import EventType as E
from shared.unsubscribe.metrics import unsubscribe_figures

#: Rates with their numerator and denominator named, so a reader knows what "open rate" means here.
RATES = {
    "delivery_rate": ("delivered", "sent"),
    "bounce_rate": ("bounced", "sent"),
    "complaint_rate": ("complained", "delivered"),
    "open_rate": ("opened_unique", "delivered"),
    "click_rate": ("clicked_unique", "delivered"),
    "click_to_open_rate": ("clicked_unique", "opened_unique"),
}


def _messages(*events: str) -> ColumnElement[int]:
    return func.count(distinct(EmailMetric.message_id)).filter(EmailMetric.event.in_(events))


def _rows(event: str) -> ColumnElement[int]:
    return func.count().filter(EmailMetric.event == event)


_HARD = EmailMetric.metadata_["bounce_type"].astext == "Permanent"
_COUNTS: dict[str, ColumnElement[int]] = {
    "sent": _messages(E.SENT),
    "delivered": _messages(E.DELIVERED),
    "opened_unique": _messages(E.OPENED),
    "opened_total": _rows(E.OPENED),
    "clicked_unique": _messages(E.CLICKED),
    "clicked_total": _rows(E.CLICKED),
    "bounced": _messages(E.BOUNCED),
    "bounced_hard": func.count(distinct(EmailMetric.message_id)).filter(
        EmailMetric.event == E.BOUNCED, _HARD
    ),
    "complained": _messages(E.COMPLAINED),
    "delayed": _messages(E.DELIVERY_DELAYED),
    "suppressed": _messages(E.SUPPRESSED),
    "failed": _messages(E.FAILED),
    "events": func.count(),
}


def delivery_counts(session: Session, task_id: uuid.UUID) -> dict[str, int]:
    """Every count of the task in one query over ``email_metrics``."""
    labelled = [column.label(name) for name, column in _COUNTS.items()]
    row = session.execute(select(*labelled).where(EmailMetric.task_id == task_id)).one()
    return {name: int(value or 0) for name, value in row._mapping.items()}


def delivery_metrics(counts: dict[str, int]) -> dict[str, Any]:
    """Counts plus rates (``value`` is ``None`` while the denominator is zero)."""
    rates = {}
    for name, (numerator, denominator) in RATES.items():
        below = counts[denominator]
        value = round(counts[numerator] / below, 4) if below else None
        rates[name] = {"value": value, "numerator": numerator, "denominator": denominator}
    return {**counts, "rates": rates, "source": "email_metrics"}


def refresh_task_metrics(session: Session, task_id: uuid.UUID) -> dict[str, Any]:
    """Recompute and store the task's delivery metrics; returns what was stored.

    The task row is locked first: two events of one task committed in parallel would otherwise each
    count without the other's row and the later write would lose one (READ COMMITTED re-reads after
    the lock, so the second sees the first). ``FOR NO KEY UPDATE``, not ``FOR UPDATE``: the metric
    insert's foreign-key check holds a KEY SHARE lock on the task, and upgrading past it deadlocked.
    """
    session.execute(select(Task.id).where(Task.id == task_id).with_for_update(key_share=True))
    metrics = {**delivery_metrics(delivery_counts(session, task_id)), **unsubscribe_figures(session, task_id)}
    # `||` merges at the top level in SQL: the worker's own keys in execution_result stay intact.
    merged = Task.execution_result.op("||")(literal({"delivery": metrics}, JSONB))
    session.execute(update(Task).where(Task.id == task_id).values(execution_result=merged))
    return metrics
