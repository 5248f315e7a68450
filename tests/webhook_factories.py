"""Ledger rows and Resend webhook bodies for the receiver and event-processing tests."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from shared.models import Connector, EmailMessage, Organization, Task, WebhookEvent

#: The secret of the signing test vectors.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Ledger:
    """Ids of one organization, connector, task and sent message."""

    organization_id: uuid.UUID
    connector_id: uuid.UUID
    task_id: uuid.UUID
    message_id: uuid.UUID
    resend_email_id: str
    recipient: str


def make_organization(session: Session) -> tuple[uuid.UUID, uuid.UUID]:
    """A new organization and its connector (ids)."""
    organization = Organization(name="acme")
    session.add(organization)
    session.flush()
    connector = Connector(organization_id=organization.id, name=f"resend-{uuid.uuid4().hex[:6]}")
    session.add(connector)
    session.flush()
    return organization.id, connector.id


def make_message(
    session: Session,
    organization_id: uuid.UUID,
    connector_id: uuid.UUID,
    *,
    task_id: uuid.UUID | None = None,
    recipient: str = "someone@example.com",
    status: str = "sent",
    resend_email_id: str | None = "auto",
) -> Ledger:
    """A ledger row (and a task unless ``task_id`` is given) for one recipient."""
    if task_id is None:
        task = Task(organization_id=organization_id, name="campaign", execution_result={"send": {"sent": 1}})
        session.add(task)
        session.flush()
        task_id = task.id
    email_id = str(uuid.uuid4()) if resend_email_id == "auto" else resend_email_id
    message = EmailMessage(
        organization_id=organization_id,
        connector_id=connector_id,
        task_id=task_id,
        idempotency_key=f"test/{uuid.uuid4()}",
        recipient=recipient,
        subject="Hello",
        status=status,
        resend_email_id=email_id,
    )
    session.add(message)
    session.flush()
    return Ledger(organization_id, connector_id, task_id, message.id, email_id or "", recipient)


def make_ledger(session: Session, **kwargs: Any) -> Ledger:
    """A new organization, connector, task and one sent message."""
    organization_id, connector_id = make_organization(session)
    return make_message(session, organization_id, connector_id, **kwargs)


def resend_payload(
    event_type: str,
    email_id: str,
    *,
    created_at: datetime = T0,
    recipient: str = "someone@example.com",
    tags: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A Resend webhook body for ``email.<event_type>``."""
    data: dict[str, Any] = {
        "email_id": email_id,
        "created_at": _iso(T0 - timedelta(seconds=1)),
        "from": "Acme <onboarding@resend.dev>",
        "to": [recipient],
        "subject": "Hello",
        "message_id": f"<{email_id}@resend.dev>",
        **extra,
    }
    if tags:
        data["tags"] = tags
    return {"type": f"email.{event_type}", "created_at": _iso(created_at), "data": data}


def resend_body(*args: Any, **kwargs: Any) -> bytes:
    """:func:`resend_payload` as the compact bytes a sender signs."""
    return json.dumps(resend_payload(*args, **kwargs), separators=(",", ":")).encode()


def store_event(
    session: Session, payload: dict[str, Any], *, received_at: datetime | None = None
) -> uuid.UUID:
    """A stored, unprocessed webhook event (as the receiver leaves it)."""
    event = WebhookEvent(svix_id=f"msg_{uuid.uuid4().hex}", type=payload.get("type", ""), payload=payload)
    if received_at is not None:
        event.received_at = received_at
    session.add(event)
    session.flush()
    return event.id


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
