"""A task's unsubscribe figures, recomputed from its ``email_metrics`` rows (event ``unsubscribed``).

They live in ``tasks.execution_result["delivery"]`` beside the webhook figures: ``unsubscribed``
(emails whose recipient used the link) and ``unsubscribed_by_topic`` (the same, by the email's
topic). Webhook processing recomputes them with the rest; an unsubscribe recomputes them alone.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.resend_events import EventType

_COUNT = text(
    """
SELECT metadata->>'email_topic', count(DISTINCT metadata->>'message_id')
FROM email_metrics WHERE task_id = :task AND event = :event
GROUP BY 1
"""
)
_TOTAL = text(
    "SELECT count(DISTINCT metadata->>'message_id') FROM email_metrics"
    " WHERE task_id = :task AND event = :event"
)
_LOCK_TASK = text("SELECT id FROM tasks WHERE id = :task FOR NO KEY UPDATE")
_STORE = text(
    """
UPDATE tasks SET execution_result = execution_result || jsonb_build_object(
    'delivery', COALESCE(execution_result->'delivery', '{}'::jsonb) || CAST(:figures AS jsonb))
WHERE id = :task
"""
)


def unsubscribe_figures(session: Session, task_id: uuid.UUID) -> dict[str, Any]:
    """``{"unsubscribed": n, "unsubscribed_by_topic": {topic: n}}`` of the task (emails without a
    topic count in the total only)."""
    params = {"task": task_id, "event": EventType.UNSUBSCRIBED.value}
    by_topic = {topic: int(count) for topic, count in session.execute(_COUNT, params) if topic}
    total = int(session.execute(_TOTAL, params).scalar() or 0)
    return {"unsubscribed": total, "unsubscribed_by_topic": by_topic}


def store_task_figures(session: Session, task_id: uuid.UUID) -> dict[str, Any]:
    """Recompute the task's figures and merge them into its delivery metrics (task row locked first,
    as webhook processing does, so two writers never lose each other's rows)."""
    session.execute(_LOCK_TASK, {"task": task_id})
    figures = unsubscribe_figures(session, task_id)
    session.execute(_STORE, {"task": task_id, "figures": json.dumps(figures)})
    return figures
