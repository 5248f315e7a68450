"""Send through Marketing Pilot from an upstream app: validated kwargs, the right queue, the task id.

``PilotClient(Celery(broker=...))`` or ``PilotClient.from_broker_url(url)``; each send validates its
kwargs with the worker's own models (pydantic's ``ValidationError`` names every bad field).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from celery import Celery

from marketing_pilot_client.contract import CANCEL, PRIORITY_SENDS_QUEUE, SEND_BATCH, SEND_EMAIL, send_queue
from marketing_pilot_client.payloads import CancelPayload, EmailFields, SendBatchPayload, SendEmailPayload


class PilotClient:
    """Publishes ``pilot.send_email``, ``pilot.send_batch`` and ``pilot.cancel`` with a Celery app
    (producer only)."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    @classmethod
    def from_broker_url(cls, broker_url: str) -> PilotClient:
        """A client with a Celery app of its own on ``broker_url`` (JSON, as the workers require)."""
        app = Celery("marketing-pilot-client", broker=broker_url, set_as_current=False)
        app.conf.update(task_serializer="json", accept_content=["json"])
        return cls(app)

    def send_email(self, connector_id: uuid.UUID | str, **fields: Any) -> str:
        """Publish one ``pilot.send_email`` (fields as in its schema); its Celery task id."""
        payload = SendEmailPayload.model_validate({"connector_id": connector_id, **fields})
        return self.publish_email(payload)

    def send_batch(
        self, connector_id: uuid.UUID | str, emails: Sequence[EmailFields | Mapping[str, Any]], **fields: Any
    ) -> str:
        """Publish one ``pilot.send_batch`` of ``emails``, each validated as the worker will; its task id."""
        items = [
            email if isinstance(email, EmailFields) else EmailFields.model_validate(email) for email in emails
        ]
        wire = [_wire(email) for email in items]
        payload = SendBatchPayload.model_validate({"connector_id": connector_id, "emails": wire, **fields})
        return self.publish_batch(payload)

    def cancel(self, **selection: Any) -> str:
        """Publish one ``pilot.cancel`` (``connector_id`` + ``idempotency_key``, ``task_id`` or
        ``message_ids``); its Celery task id. The task's result answers each row."""
        payload = CancelPayload.model_validate(selection)
        # On the priority queue, as the worker routes it: a cancel lands before the time it races.
        return self._publish(CANCEL, _wire(payload), PRIORITY_SENDS_QUEUE)

    def publish_email(self, payload: SendEmailPayload) -> str:
        """Publish a validated ``pilot.send_email`` to its class's queue; the Celery task id."""
        return self._publish(SEND_EMAIL, _wire(payload), send_queue(payload.resolved_priority))

    def publish_batch(self, payload: SendBatchPayload) -> str:
        """Publish a validated ``pilot.send_batch`` to its class's queue; the Celery task id."""
        return self._publish(SEND_BATCH, _wire(payload), send_queue(payload.resolved_priority))

    def _publish(self, name: str, kwargs: dict[str, Any], queue: str) -> str:
        result = self.app.send_task(name, kwargs=kwargs, queue=queue)
        return str(result.id)


def _wire(model: EmailFields | SendBatchPayload | CancelPayload) -> dict[str, Any]:
    # Wire names (``from``), JSON types (ids as text), fields left unset left out.
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
