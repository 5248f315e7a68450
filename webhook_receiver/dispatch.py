"""Enqueue ``pilot.process_webhook_event`` by name through a producer-only Celery client.

A stored event is safe, so publishing is off the request path: :class:`BatchingDispatcher` hands ids
to a background thread that sends up to ``MAX_BATCH`` per task message. If the broker is down or the
process dies before a flush, the sweep enqueues the stored events later.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

from shared.task_producer import TaskProducer, publish_event_processing

logger = logging.getLogger(__name__)

#: Event ids per task message, and how long the first id of a batch waits for company (a longer
#: wait means fewer publishes, at about 1 ms of CPU each; processing a quarter second later is free).
MAX_BATCH = 100
LINGER_S = 0.25


class Dispatcher(Protocol):
    """What the receiver needs from a queue."""

    def enqueue(self, event_id: str) -> None:
        """Ask a worker to process stored event ``event_id``."""

    def ping(self) -> bool:
        """Whether the broker answers."""


class CeleryPublisher:
    """Sends ``pilot.process_webhook_event`` to the events queue on ``broker_url``, through a
    fail-fast :class:`~shared.task_producer.TaskProducer`."""

    def __init__(self, *, broker_url: str, transport_options: Mapping[str, Any] | None = None) -> None:
        self._producer = TaskProducer(broker_url, transport_options=transport_options)

    def publish(self, event_ids: list[str]) -> None:
        """One task message for ``event_ids``; raises kombu/redis errors when the broker is down."""
        publish_event_processing(self._producer, event_ids)

    def enqueue(self, event_id: str) -> None:
        """Publish the task for ``event_id`` now (a :class:`Dispatcher` without batching)."""
        self.publish([event_id])

    def ping(self) -> bool:
        """Whether a connection to the broker can be opened."""
        return self._producer.ping()


class BatchingDispatcher:
    """Collects event ids and publishes them from a background thread, many per message."""

    def __init__(
        self, publisher: CeleryPublisher, *, max_batch: int = MAX_BATCH, linger: float = LINGER_S
    ) -> None:
        self._publisher = publisher
        self._max_batch = max_batch
        self._linger = linger
        self._pending: list[str] = []
        self._cond = threading.Condition()
        self._owner_pid: int | None = None

    def enqueue(self, event_id: str) -> None:
        """Queue ``event_id`` for the next batch; never blocks on the broker."""
        with self._cond:
            self._start_in_this_process()
            self._pending.append(event_id)
            # Wake the publisher only when it has something new to decide: a first id, or a full batch.
            if len(self._pending) in (1, self._max_batch):
                self._cond.notify()

    def ping(self) -> bool:
        """Whether the broker answers."""
        return self._publisher.ping()

    def flush(self) -> None:
        """Publish everything pending now, in this thread (tests; process exit)."""
        with self._cond:
            pending, self._pending = self._pending, []
        for start in range(0, len(pending), self._max_batch):
            self._publish(pending[start : start + self._max_batch])

    def _start_in_this_process(self) -> None:
        # A forked child (gunicorn --preload) inherits no thread: start one per process.
        if self._owner_pid == os.getpid():
            return
        self._owner_pid = os.getpid()
        self._pending = []
        threading.Thread(target=self._run, name="webhook-dispatch", daemon=True).start()
        atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            self._publish(self._next_batch())

    def _next_batch(self) -> list[str]:
        with self._cond:
            while not self._pending:
                self._cond.wait()
            deadline = time.monotonic() + self._linger
            while len(self._pending) < self._max_batch and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            return batch

    def _publish(self, batch: list[str]) -> None:
        try:
            self._publisher.publish(batch)
        except Exception as exc:
            # Stored is safe: the sweep enqueues unprocessed events, so nothing is lost here.
            logger.warning(
                "%d stored webhook events not enqueued (%s); the sweep will process them",
                len(batch),
                type(exc).__name__,
            )
