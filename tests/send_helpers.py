"""Helpers for send tests: an organization with a connector, tasks, suppressions, payloads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared import connector_store as store
from shared.db import transaction
from shared.models import EmailMessage, EmailRequest, Task
from shared.suppression import suppress
from tests.fake_resend import FakeResend

SENDER = "Pilot <pilot@example.test>"


class FakeClock:
    """A clock standing still at the time it was made, until moved with :meth:`advance`."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        """Move on ``seconds``; the new time."""
        self.now += timedelta(seconds=seconds)
        return self.now


class RecordingScheduler:
    """A dispatch scheduler that only records what it was asked: ``(key hash, delay)`` pairs."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def schedule(self, key_hash: str, delay_s: float) -> None:
        self.calls.append((key_hash, delay_s))


def add_connector(
    factory: sessionmaker[Session],
    *,
    per_hour: int = 1000,
    per_day: int = 10000,
    default_from: str | None = SENDER,
    status: str = "active",
    reserve_per_hour: int = 0,
) -> tuple[uuid.UUID, uuid.UUID]:
    """A new organization and connector (no stored key: the settings' RESEND_API_KEY is used)."""
    with transaction(factory) as session:
        organization = store.create_organization(session, f"org-{uuid.uuid4().hex[:8]}", actor="test")
        config: dict[str, Any] = {
            "rate_limit_per_hour": per_hour,
            "rate_limit_per_day": per_day,
            "reserve_transactional_per_hour": reserve_per_hour,
        }
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


def rows(factory: sessionmaker[Session], connector_id: uuid.UUID) -> list[EmailMessage]:
    """The connector's ledger rows, by recipient."""
    with factory() as session:
        query = select(EmailMessage).where(EmailMessage.connector_id == connector_id)
        return list(session.scalars(query.order_by(EmailMessage.recipient)))


def stored_requests(factory: sessionmaker[Session], connector_id: uuid.UUID) -> list[dict[str, Any]]:
    """The request bodies of the connector's ledger rows, by recipient (``email_requests``)."""
    with factory() as session:
        query = (
            select(EmailRequest.request)
            .join(EmailMessage, EmailRequest.of_message())
            .where(EmailMessage.connector_id == connector_id)
        )
        return list(session.scalars(query.order_by(EmailMessage.recipient)))


def stored_request(session: Session, message_id: uuid.UUID) -> dict[str, Any]:
    """The request body of one ledger row."""
    return session.scalars(select(EmailRequest.request).where(EmailRequest.message_id == message_id)).one()


def sends(resend: FakeResend) -> list[httpx.Request]:
    """The send requests (POSTs) the fake Resend received, in order."""
    return [r for r in resend.requests if r.method == "POST"]


def email(to: str | list[str], **fields: Any) -> dict[str, Any]:
    """One email's fields."""
    return {"to": to, "subject": "Hello", "html": "<p>Hello</p>", **fields}


def send_payload(connector_id: uuid.UUID, to: str | list[str], **fields: Any) -> dict[str, Any]:
    """``pilot.send_email`` kwargs."""
    return {"connector_id": str(connector_id), **email(to, **fields)}


def batch_payload(connector_id: uuid.UUID, recipients: list[str], **fields: Any) -> dict[str, Any]:
    """``pilot.send_batch`` kwargs, one email per recipient."""
    return {"connector_id": str(connector_id), "emails": [email(to) for to in recipients], **fields}
