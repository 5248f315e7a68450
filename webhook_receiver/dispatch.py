"""Enqueue ``pilot.process_webhook_event`` by name through a producer-only Celery client.

The receiver never imports ``worker/``: the task name in :mod:`shared.task_names` is the contract.
Publishing fails fast (no publish retries, short socket timeouts) because a stored event is already
safe: when the broker is down the sweep enqueues it later.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from celery import Celery

from shared import task_names

#: Seconds to wait for the broker before giving the event up to the sweep.
BROKER_TIMEOUT_S = 2.0


class Dispatcher(Protocol):
    """What the receiver needs from a queue."""

    def enqueue(self, event_id: str) -> None:
        """Ask a worker to process stored event ``event_id``; raises if the broker refused."""

    def ping(self) -> bool:
        """Whether the broker answers."""


class CeleryDispatcher:
    """Sends ``pilot.process_webhook_event`` to the events queue on ``broker_url``.

    ``transport_options`` are added to kombu's (tests isolate their keys with ``global_keyprefix``).
    """

    def __init__(self, *, broker_url: str, transport_options: Mapping[str, Any] | None = None) -> None:
        self._celery = Celery("pilot-webhook-receiver", broker=broker_url, set_as_current=False)
        self._celery.conf.update(
            task_publish_retry=False,
            broker_connection_timeout=BROKER_TIMEOUT_S,
            broker_connection_retry=False,
            broker_transport_options={
                "socket_connect_timeout": BROKER_TIMEOUT_S,
                "socket_timeout": BROKER_TIMEOUT_S,
                **(transport_options or {}),
            },
            task_serializer="json",
        )

    def enqueue(self, event_id: str) -> None:
        """Publish the task for ``event_id``; raises kombu/redis errors when the broker is down."""
        self._celery.send_task(
            task_names.PROCESS_WEBHOOK_EVENT, args=[event_id], queue=task_names.EVENTS_QUEUE
        )

    def ping(self) -> bool:
        """Whether a connection to the broker can be opened."""
        try:
            with self._celery.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
        except Exception:
            return False
        return True
