"""The worker process's send context: built on first use in each process (after fork), scheduling
later dispatches through the Celery app."""

from __future__ import annotations

from typing import Any

from celery import Celery

from shared.sending.context import SendContext, process_context
from shared.sending.scheduling import ReservingScheduler
from shared.settings import get_settings
from shared.task_producer import publish
from worker import metrics


def context(app: Celery) -> SendContext:
    """This process's send context (built on first use, after fork), scheduling through ``app``."""
    return process_context(lambda: _build_context(app))


def _build_context(app: Celery) -> SendContext:
    ctx = SendContext.from_settings(get_settings(), metrics=metrics.WorkerSendMetrics())

    def send(name: str, kwargs: dict[str, Any], countdown: float) -> None:
        publish(app, name, kwargs=kwargs, countdown=countdown)

    ctx.scheduler = ReservingScheduler(ctx.limiter, send)
    return ctx
