"""Helpers for send tests: an organization with a connector, tasks, suppressions, payloads."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from shared import connector_store as store
from shared.db import transaction
from shared.models import Task
from shared.suppression import suppress

SENDER = "Pilot <pilot@example.test>"


def add_connector(
    factory: sessionmaker[Session],
    *,
    per_hour: int = 1000,
    per_day: int = 10000,
    default_from: str | None = SENDER,
    status: str = "active",
) -> tuple[uuid.UUID, uuid.UUID]:
    """A new organization and connector (no stored key: the settings' RESEND_API_KEY is used)."""
    with transaction(factory) as session:
        organization = store.create_organization(session, f"org-{uuid.uuid4().hex[:8]}", actor="test")
        config: dict[str, Any] = {"rate_limit_per_hour": per_hour, "rate_limit_per_day": per_day}
        if default_from:
            config["default_from"] = default_from
        connector = store.create_connector(
            session, organization_id=organization.id, name="resend", config=config, actor="test"
        )
        connector.status = status
        return organization.id, connector.id


def add_task(factory: sessionmaker[Session], organization_id: uuid.UUID) -> uuid.UUID:
    """A ``tasks`` row of the organization."""
    with transaction(factory) as session:
        task = Task(id=uuid.uuid4(), organization_id=organization_id, name="campaign")
        session.add(task)
        return task.id


def add_suppressions(
    factory: sessionmaker[Session], organization_id: uuid.UUID, emails: list[str], reason: str = "hard_bounce"
) -> None:
    """Put ``emails`` on the organization's suppression list."""
    with transaction(factory) as session:
        for email in emails:
            suppress(session, organization_id, email, reason, source="test")


def email(to: str | list[str], **fields: Any) -> dict[str, Any]:
    """One email's fields."""
    return {"to": to, "subject": "Hello", "html": "<p>Hello</p>", **fields}


def send_payload(connector_id: uuid.UUID, to: str | list[str], **fields: Any) -> dict[str, Any]:
    """``pilot.send_email`` kwargs."""
    return {"connector_id": str(connector_id), **email(to, **fields)}


def batch_payload(connector_id: uuid.UUID, recipients: list[str], **fields: Any) -> dict[str, Any]:
    """``pilot.send_batch`` kwargs, one email per recipient."""
    return {"connector_id": str(connector_id), "emails": [email(to) for to in recipients], **fields}
