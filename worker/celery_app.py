"""The Celery app, built from settings by :func:`make_celery`.

``celery -A worker.celery_app worker`` imports this module, which builds ``app`` from the
environment. Building the app connects to nothing; the worker connects when it starts.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery
from celery.schedules import crontab
from celery.signals import (
    celeryd_init,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
)
from kombu.entity import Exchange, Queue

from shared import task_names
from shared.errors import ConfigError
from shared.logs import configure_logging
from shared.settings import Settings, get_settings

#: Longest a send task may run; the broker's visibility timeout stays far above it.
SEND_TIME_LIMIT_S = 120
#: Redis redelivers an unacked task after this long; never shorter than any countdown we use.
VISIBILITY_TIMEOUT_S = 3600

#: Modules whose import registers tasks on the app.
TASK_MODULES = ["worker.tasks", "worker.beat.tasks", "worker.events.tasks", "worker.broker.tasks"]
#: Our consumer: a message it cannot run is dead-lettered instead of stopping the worker.
WORKER_CONSUMER = "worker.broker.consumer:GuardedConsumer"

#: How often beat releases the scheduled rows whose time has come.
RELEASE_SCHEDULED_EVERY_S = 1.0

#: When beat rewrites the ledger's rollups of the last finished days (shared.partitions.ledger_rollups).
LEDGER_ROLLUP_SCHEDULE = crontab(minute=30, hour=0)

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "check-connector-status": {"task": task_names.CHECK_CONNECTOR_STATUS, "schedule": 300.0},
    "release-deferred": {"task": task_names.RELEASE_DEFERRED, "schedule": 30.0},
    # Every second, so a scheduled email leaves within about a second of its time; a release not
    # run within 5 s is dropped (the next one does its work).
    "release-scheduled": {
        "task": task_names.RELEASE_SCHEDULED,
        "schedule": RELEASE_SCHEDULED_EVERY_S,
        "options": {"expires": 5.0},
    },
    "remove-unneeded-attachments": {"task": task_names.REMOVE_ATTACHMENTS, "schedule": 3600.0},
    "sweep": {"task": task_names.SWEEP, "schedule": 60.0},
    "reconcile": {"task": task_names.RECONCILE, "schedule": 300.0},
    # The outbox of outcome events: one indexed read when it is empty.
    "publish-outcomes": {"task": task_names.PUBLISH_OUTCOMES, "schedule": 2.0},
    # Partitions ahead and retention (shared.partitions); hourly, so a missed run is soon made good.
    "maintain-partitions": {"task": task_names.MAINTAIN_PARTITIONS, "schedule": 3600.0},
    # Nightly, not hourly: each run reads two days of ledger, and a day's figures only settle once its
    # emails are delivered. At 00:30 UTC yesterday's last sends have mostly had their outcome.
    "roll-up-ledger": {"task": task_names.ROLL_UP_LEDGER, "schedule": LEDGER_ROLLUP_SCHEDULE},
}


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for at-least-once delivery: no task is lost when a worker dies."""
    return {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        # "priority": a worker takes from its queues in the order it consumes them (the first
        # holding a message), instead of turn about: transactional sends never wait behind bulk ones.
        "broker_transport_options": {
            "visibility_timeout": VISIBILITY_TIMEOUT_S,
            "queue_order_strategy": "priority",
        },
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_time_limit": SEND_TIME_LIMIT_S,
        "task_soft_time_limit": SEND_TIME_LIMIT_S - 10,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_soft_shutdown_timeout": 30.0,
        "worker_consumer": WORKER_CONSUMER,
        # Each queue gets its own direct exchange and routing key. A bare Queue(name) would be bound
        # to the default exchange under the default routing key, so every queue would receive
        # every message: sends would also land in the maintenance queue, and the other way round.
        "task_queues": [
            Queue(name, Exchange(name, type="direct"), routing_key=name)
            for name in task_names.CONSUMED_QUEUES
        ],
        "task_default_queue": task_names.MAINTENANCE_QUEUE,
        "task_routes": {name: {"queue": queue} for name, queue in task_names.TASK_QUEUES.items()},
        "beat_schedule": BEAT_SCHEDULE,
        "timezone": "UTC",
        "enable_utc": True,
    }


def make_celery(settings: Settings) -> Celery:
    """A Celery app configured from ``settings``, with our task modules registered."""
    celery = Celery("marketing_pilot", set_as_current=False)
    celery.conf.update(celery_config(settings))
    celery.conf.include = TASK_MODULES
    worker_process_init.connect(_on_process_init, weak=False, dispatch_uid="pilot-process-init")
    _connect_metrics(settings)
    return celery


def _on_process_init(**_: Any) -> None:
    """In each new pool child: drop collaborators inherited from the parent; build afresh on use.

    Engines made by ``shared.db.make_engine`` already drop inherited connections after ``fork``;
    this also forgets the parent's Redis and HTTP clients.
    """
    from shared.sending.context import forget_inherited_contexts

    forget_inherited_contexts()


def _setup_logging(**_: Any) -> None:
    """Our format switch and secret redaction instead of Celery's own logging set-up."""
    configure_logging(get_settings())


# Connecting a receiver to setup_logging is how Celery is told not to configure logging itself.
setup_logging.connect(_setup_logging, weak=False)


def _connect_metrics(settings: Settings) -> None:
    """Serve the worker's metrics from its main process; time tasks; forget exited children.

    ``celeryd_init`` fires only in a ``celery worker`` main process, before the pool forks, so the
    children inherit the metrics directory. The first app made in a process wins (dispatch uids).
    """
    from worker import metrics

    exporter: list[metrics.Exporter] = []
    started: dict[str, float] = {}

    def on_init(**_: Any) -> None:
        running = metrics.start_exporter(settings)
        if running is not None:
            exporter.append(running)

    def on_shutdown(**_: Any) -> None:
        while exporter:
            exporter.pop().stop()

    def on_child_exit(pid: int | None = None, **_: Any) -> None:
        metrics.mark_process_dead(pid or os.getpid())

    def on_prerun(task_id: str | None = None, **_: Any) -> None:
        if task_id is not None:
            started[task_id] = time.perf_counter()

    def on_postrun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
        begun = started.pop(task_id, None) if task_id is not None else None
        if begun is not None and task is not None:
            metrics.observe_task(task.name, time.perf_counter() - begun)

    celeryd_init.connect(on_init, weak=False, dispatch_uid="pilot-metrics-init")
    worker_shutdown.connect(on_shutdown, weak=False, dispatch_uid="pilot-metrics-shutdown")
    worker_process_shutdown.connect(on_child_exit, weak=False, dispatch_uid="pilot-metrics-child-exit")
    task_prerun.connect(on_prerun, weak=False, dispatch_uid="pilot-metrics-prerun")
    task_postrun.connect(on_postrun, weak=False, dispatch_uid="pilot-metrics-postrun")


try:
    app = make_celery(get_settings())
except ConfigError as exc:
    # `celery -A worker.celery_app ...` (worker and beat) stops with one line naming the variable.
    raise SystemExit(str(exc)) from None
