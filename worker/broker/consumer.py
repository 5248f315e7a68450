"""The worker's consumer: a broker message it cannot run is dead-lettered; the worker keeps consuming.

Installed through Celery's ``worker_consumer`` setting. Each message is checked before Celery's
handler unpacks it (:mod:`worker.broker.message_check`), and Celery's own refusal hooks take the same
path: recorded through ``pilot.record_dead_letter``, then acknowledged. The order, and what a failed
publish does: docs/architecture.md, "Broker message hardening".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from celery.worker.consumer import Consumer
from kombu.exceptions import ContentDisallowed
from kombu.transport import virtual

from shared import task_names
from shared.errors import DeadLetterNotPublished
from shared.models import DeadLetterReason
from shared.task_producer import publish
from worker import metrics
from worker.broker.dead_letters import DeadLetterRecord, dead_letter_record
from worker.broker.message_check import Refusal, check_task_message, decode_problem, quoted, task_signatures

logger = logging.getLogger(__name__)

Publish = Callable[[DeadLetterRecord], None]


class MessageRefuser:
    """Refuses one message: log, count, publish its dead-letter record, then acknowledge it."""

    def __init__(self, publish: Publish, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.publish = publish
        self.clock = clock

    def __call__(self, message: Any, refusal: Refusal) -> None:
        record = dead_letter_record(message, refusal, received_at=self.clock())
        try:
            self.publish(record)
        except Exception as exc:
            logger.error(
                "could not dead-letter a refused message (%s), id %s: %s; left unacknowledged",
                record.reason.value,
                quoted(record.message_id),
                type(exc).__name__,
            )
            raise DeadLetterNotPublished(f"dead letter not published: {type(exc).__name__}") from exc
        if not message.acknowledged:
            message.ack()
        metrics.count_rejected_message(record.reason.value)
        logger.warning(
            "refused a broker message (%s): %s; task %s, id %s, queue %s; dead-lettered",
            record.reason.value,
            record.detail,
            quoted(record.task_name),
            quoted(record.message_id),
            quoted(record.queue),
        )


def publish_with(app: Any) -> Publish:
    """Publishes records as ``pilot.record_dead_letter`` tasks through ``app``, to their queue."""

    def send(record: DeadLetterRecord) -> None:
        publish(app, task_names.RECORD_DEAD_LETTER, kwargs=record.model_dump(mode="json"))

    return send


class GuardedConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer, refusing what it cannot run instead of stopping the worker."""

    refuser: MessageRefuser | None = None

    def refuse(self, message: Any, refusal: Refusal) -> None:
        """Dead-letter ``message`` and acknowledge it (see the module docstring)."""
        if self.refuser is None:
            self.refuser = MessageRefuser(publish_with(self.app))
        self.refuser(message, refusal)

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Callable[[Any], None]:
        take = super().create_task_handler(*args, **kwargs)
        channel = self.task_consumer.channel
        # Redis (a virtual transport): kombu builds each message from the envelope stored in Redis.
        if isinstance(channel, virtual.Channel) and channel.Message is virtual.Message:
            channel.Message = TolerantMessage
        signatures = task_signatures(self.app.tasks)
        # Broker failures propagate so Celery reconnects; the Redis transport counts KeyError among
        # them, but here a KeyError means a message Celery could not unpack.
        broker_failures = tuple(e for e in self.connection_errors if not issubclass(e, LookupError))

        def on_task_received(message: Any) -> None:
            refusal = check_task_message(message, signatures)
            if refusal is not None:
                self.refuse(message, refusal)
                return
            try:
                take(message)
            except broker_failures:
                raise
            except Exception as exc:
                detail = f"Celery could not take it: {type(exc).__name__}"
                self.refuse(message, Refusal(DeadLetterReason.UNEXPECTED, detail))

        return on_task_received

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self.refuse(message, Refusal(DeadLetterReason.MALFORMED, "not a task message (no task name)"))

    def on_unknown_task(self, body: Any, message: Any, exc: BaseException) -> None:
        self.refuse(message, Refusal(DeadLetterReason.UNKNOWN_TASK, "task: not a registered task"))

    def on_invalid_task(self, body: Any, message: Any, exc: BaseException) -> None:
        if isinstance(exc, ContentDisallowed):
            refusal = Refusal(DeadLetterReason.CONTENT_TYPE, "content type: not accepted")
        else:
            refusal = Refusal(DeadLetterReason.MALFORMED, f"Celery refused it: {type(exc).__name__}")
        self.refuse(message, refusal)

    def on_decode_error(self, message: Any, exc: BaseException) -> None:
        # Remote-control (pidbox) messages come here too; only task messages are dead-lettered.
        if not self._is_task_message(message):
            super().on_decode_error(message, exc)
            return
        self.refuse(message, Refusal(DeadLetterReason.UNDECODABLE, f"body: {decode_problem(exc)}"))

    def _is_task_message(self, message: Any) -> bool:
        delivery = message.delivery_info or {}
        queues = set(self.app.amqp.queues)
        return delivery.get("routing_key") in queues or delivery.get("exchange") in queues


class TolerantMessage(virtual.Message):
    """The Redis transport's message, surviving headers that are not a mapping (kombu publishes any).

    kombu reads ``headers.get("compression")`` while it builds a message, so such headers would stop
    the worker before the consumer sees them. They are kept as given, for the check to refuse.
    """

    def __init__(self, payload: Any, channel: Any = None, **kwargs: Any) -> None:
        headers = payload.get("headers") if isinstance(payload, dict) else None
        if headers is None or isinstance(headers, dict):
            super().__init__(payload, channel=channel, **kwargs)
            return
        super().__init__({**payload, "headers": {}}, channel=channel, **kwargs)
        self._raw = payload  # what the transport restores if it is never acknowledged
        self.headers = headers
