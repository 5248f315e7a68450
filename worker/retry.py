"""How Celery itself retries a task: only when the database is unreachable (its work may not be
written yet), for as long as it takes, by the one backoff rule (:mod:`shared.backoff`)."""

from __future__ import annotations

from typing import Any

from shared.backoff import BACKOFF_BASE_S, BACKOFF_CAP_S
from shared.db import DATABASE_UNAVAILABLE

#: Task options: ``@shared_task(..., **DATABASE_RETRY)``.
DATABASE_RETRY: dict[str, Any] = {
    "max_retries": None,
    "autoretry_for": DATABASE_UNAVAILABLE,
    "retry_backoff": BACKOFF_BASE_S,
    "retry_backoff_max": BACKOFF_CAP_S,
    "retry_jitter": True,
}
