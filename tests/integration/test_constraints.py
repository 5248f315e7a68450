"""Unique and foreign-key rules of the schema hold in the real PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from shared.models import (
    AuditLog,
    Connector,
    EmailMessage,
    EmailMetric,
    Organization,
    Suppression,
    Task,
    WebhookEvent,
)
from shared.sending.rendering import message_id_for


@pytest.fixture
def organization(db_session: Session) -> Organization:
    org = Organization(name="Acme")
    db_session.add(org)
    db_session.flush()
    return org


@pytest.fixture
def connector(db_session: Session, organization: Organization) -> Connector:
    conn = Connector(organization_id=organization.id, name="main", config={})
    db_session.add(conn)
    db_session.flush()
    return conn


def _message(organization: Organization, connector: Connector, key: str) -> EmailMessage:
    return EmailMessage(
        id=message_id_for(key),
        organization_id=organization.id,
        connector_id=connector.id,
        idempotency_key=key,
        recipient="a@x.io",
    )


def _refused(session: Session, *rows: object) -> None:
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add_all(rows)
        session.flush()


def test_suppression_refuses_same_address_in_another_letter_case(
    db_session: Session, organization: Organization
) -> None:
    db_session.add(
        Suppression(organization_id=organization.id, email="bob@example.com", reason="hard_bounce")
    )
    db_session.flush()

    _refused(
        db_session, Suppression(organization_id=organization.id, email="Bob@Example.com", reason="manual")
    )


def test_suppression_refuses_exact_duplicate(db_session: Session, organization: Organization) -> None:
    db_session.add(
        Suppression(organization_id=organization.id, email="bob@example.com", reason="hard_bounce")
    )
    db_session.flush()

    _refused(
        db_session, Suppression(organization_id=organization.id, email="bob@example.com", reason="manual")
    )


def test_suppression_same_address_in_two_organizations_is_allowed(
    db_session: Session, organization: Organization
) -> None:
    other = Organization(name="Other")
    db_session.add(other)
    db_session.flush()
    db_session.add_all(
        [
            Suppression(organization_id=organization.id, email="bob@example.com", reason="manual"),
            Suppression(organization_id=other.id, email="bob@example.com", reason="manual"),
        ]
    )
    db_session.flush()


def test_suppression_refuses_unknown_reason(db_session: Session, organization: Organization) -> None:
    _refused(db_session, Suppression(organization_id=organization.id, email="x@y.z", reason="because"))


def test_suppression_refuses_unknown_organization(db_session: Session) -> None:
    _refused(db_session, Suppression(organization_id=uuid.uuid4(), email="x@y.z", reason="manual"))


def test_message_idempotency_key_is_unique_through_the_id_derived_from_it(
    db_session: Session, organization: Organization, connector: Connector
) -> None:
    db_session.add(_message(organization, connector, "k1"))
    db_session.flush()

    _refused(db_session, _message(organization, connector, "k1"))


def test_message_refuses_unknown_connector(db_session: Session, organization: Organization) -> None:
    row = EmailMessage(
        organization_id=organization.id, connector_id=uuid.uuid4(), idempotency_key="k", recipient="a@b.c"
    )
    _refused(db_session, row)


def test_message_refuses_unknown_status(
    db_session: Session, organization: Organization, connector: Connector
) -> None:
    row = _message(organization, connector, "k2")
    row.status = "lost"
    _refused(db_session, row)


def test_webhook_event_svix_id_is_unique(db_session: Session) -> None:
    db_session.add(WebhookEvent(svix_id="msg_1", type="email.sent", payload={}))
    db_session.flush()

    _refused(db_session, WebhookEvent(svix_id="msg_1", type="email.sent", payload={}))


def test_metric_is_unique_per_webhook_event(db_session: Session) -> None:
    event = WebhookEvent(svix_id="msg_2", type="email.sent", payload={})
    db_session.add(event)
    db_session.flush()
    db_session.add(EmailMetric(webhook_event_id=event.id, event="sent"))
    db_session.flush()

    _refused(db_session, EmailMetric(webhook_event_id=event.id, event="sent"))


def test_connector_name_is_unique_within_organization(
    db_session: Session, organization: Organization, connector: Connector
) -> None:
    _refused(db_session, Connector(organization_id=organization.id, name="main", config={}))


def test_connector_refuses_unknown_status(db_session: Session, organization: Organization) -> None:
    _refused(db_session, Connector(organization_id=organization.id, name="x", config={}, status="broken"))


def test_deleting_organization_cascades_to_its_rows(
    db_session: Session, organization: Organization, connector: Connector
) -> None:
    task = Task(organization_id=organization.id, name="campaign")
    db_session.add_all([task, _message(organization, connector, "k3")])
    db_session.add(Suppression(organization_id=organization.id, email="gone@x.io", reason="manual"))
    db_session.flush()

    db_session.execute(text("DELETE FROM organizations WHERE id = :id"), {"id": organization.id})

    for table in ("connectors", "email_messages", "tasks", "suppression_list"):
        count = db_session.scalar(
            text(f"SELECT count(*) FROM {table} WHERE organization_id = :id"), {"id": organization.id}
        )
        assert count == 0, table


def test_audit_log_refuses_update(db_session: Session) -> None:
    entry = AuditLog(actor="test", action="connector.create", result="success", details={})
    db_session.add(entry)
    db_session.flush()

    with pytest.raises(DBAPIError, match="append-only"), db_session.begin_nested():
        db_session.execute(text("UPDATE audit_logs SET actor = 'mallory' WHERE id = :id"), {"id": entry.id})


def test_audit_log_refuses_delete(db_session: Session) -> None:
    entry = AuditLog(actor="test", action="connector.create", result="success", details={})
    db_session.add(entry)
    db_session.flush()

    with pytest.raises(DBAPIError, match="append-only"), db_session.begin_nested():
        db_session.execute(text("DELETE FROM audit_logs WHERE id = :id"), {"id": entry.id})
