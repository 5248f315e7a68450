"""Publish our Celery tasks by name from any process, without importing ``worker/``.

A producer-only Celery client: the task names in :mod:`shared.task_names` are the contract, and each
task goes to its queue. Publishing fails fast (no publish retries, short socket timeouts): callers
keep what they publish in PostgreSQL first, so beat finds it if the broker is away.
"""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery

from shared import task_names

#: Seconds to wait for the broker before giving up a publish.
BROKER_TIMEOUT_S = 2.0


class TaskProducer:
    """Sends tasks to the broker at ``broker_url`` (the client is made on first use)."""

    def __init__(self, broker_url: str) -> None:
        self._broker_url = broker_url
        self._celery: Celery | None = None
        self._lock = threading.Lock()

    def send(self, name: str, kwargs: dict[str, Any], countdown: float = 0.0) -> None:
        """Publish task ``name`` with ``kwargs`` to its queue, to run in ``countdown`` seconds."""
        self._client().send_task(
            name, kwargs=kwargs, countdown=countdown or None, queue=task_names.TASK_QUEUES.get(name)
        )

    def close(self) -> None:
        """Close the broker connections."""
        with self._lock:
            if self._celery is not None:
                self._celery.close()
                self._celery = None

    def _client(self) -> Celery:
        with self._lock:
            if self._celery is None:
                celery = Celery("pilot-producer", broker=self._broker_url, set_as_current=False)
                celery.conf.update(
                    task_publish_retry=False,
                    broker_connection_timeout=BROKER_TIMEOUT_S,
                    broker_connection_retry=False,
                    broker_transport_options={
                        "socket_connect_timeout": BROKER_TIMEOUT_S,
                        "socket_timeout": BROKER_TIMEOUT_S,
                    },
                    task_serializer="json",
                )
                self._celery = celery
            return self._celery
