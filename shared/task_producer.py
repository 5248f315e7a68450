"""Publish our Celery tasks by name from any process, without importing ``worker/``.

:func:`publish` is the one place a task name meets its queue (:mod:`shared.task_names` is the
contract); :class:`TaskProducer` is a producer-only client for processes without a Celery app. It
fails fast (no publish retries, short socket timeouts): callers keep what they publish in PostgreSQL
first, so beat finds it if the broker is away.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from celery import Celery
from kombu.exceptions import OperationalError as BrokerConnectionError

from marketing_pilot_client.contract import SEND_TASKS, Priority, priority_of_kwargs, send_queue
from shared import task_names
from shared.errors import BrokerUnavailable
from shared.settings import mask_url_password

#: Seconds to wait for the broker before giving up a publish.
BROKER_TIMEOUT_S = 2.0


class TaskSender(Protocol):
    """What publishing needs of a Celery app."""

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> Any: ...


def publish(
    sender: TaskSender,
    name: str,
    *,
    args: Sequence[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    countdown: float = 0.0,
    priority: Priority | None = None,
) -> Any:
    """Publish task ``name`` to its queue (:func:`queue_for`), to run in ``countdown`` seconds;
    Celery's result handle. ``priority``: the class of a send whose kwargs do not say it (a resume
    of rows written already)."""
    return sender.send_task(
        name,
        args=list(args) if args is not None else None,
        kwargs=kwargs,
        countdown=countdown or None,
        queue=queue_for(name, kwargs or {}, priority),
    )


def queue_for(name: str, kwargs: Mapping[str, Any], priority: Priority | None = None) -> str | None:
    """The queue of task ``name``: transactional sends go to the priority queue, ahead of bulk ones."""
    if name in SEND_TASKS:
        return send_queue(priority or priority_of_kwargs(name, kwargs))
    return task_names.TASK_QUEUES.get(name)


def publish_event_processing(sender: TaskSender, event_ids: Sequence[str]) -> None:
    """``pilot.process_webhook_event`` for stored events, in one message (one id, or a list)."""
    argument: str | list[str] = event_ids[0] if len(event_ids) == 1 else list(event_ids)
    publish(sender, task_names.PROCESS_WEBHOOK_EVENT, args=[argument])


class TaskProducer:
    """Sends tasks to the broker at ``broker_url`` (the client is made on first use); every process
    without a Celery app of its own publishes through one. ``transport_options`` are added to
    kombu's (tests isolate their keys with ``global_keyprefix``)."""

    def __init__(self, broker_url: str, *, transport_options: Mapping[str, Any] | None = None) -> None:
        self._broker_url = broker_url
        self._transport_options = dict(transport_options or {})
        self._celery: Celery | None = None
        self._lock = threading.Lock()

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Celery's ``send_task`` on this producer's client (so :func:`publish` takes a producer).

        Raises :class:`BrokerUnavailable` when the broker does not answer.
        """
        try:
            return self._client().send_task(name, args=args, kwargs=kwargs, **options)
        except BrokerConnectionError as exc:
            raise BrokerUnavailable(
                f"broker unavailable at {mask_url_password(self._broker_url)}: {exc}"
            ) from None

    def send(self, name: str, kwargs: dict[str, Any], countdown: float = 0.0) -> None:
        """Publish task ``name`` with ``kwargs`` to its queue, to run in ``countdown`` seconds."""
        publish(self, name, kwargs=kwargs, countdown=countdown)

    def ping(self) -> bool:
        """Whether a connection to the broker can be opened."""
        try:
            with self._client().connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
        except Exception:
            return False
        return True

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
                        **self._transport_options,
                    },
                    task_serializer="json",
                )
                self._celery = celery
            return self._celery
