"""Organizations and connectors in PostgreSQL: every action audited, keys sealed."""

from __future__ import annotations

import uuid

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import connector_store as store
from shared.crypto import KeyRing
from shared.errors import ConnectorNotFound, OrganizationNotFound, PayloadInvalid
from shared.models import AuditLog, Connector, ConnectorUsage, Organization

LIMITS = {"default_from": "News <news@acme.test>", "rate_limit_per_hour": 50, "rate_limit_per_day": 500}


@pytest.fixture
def org(db_session: Session) -> Organization:
    return store.create_organization(db_session, "Acme", actor="test")


@pytest.fixture
def connector(db_session: Session, org: Organization, keyring: KeyRing) -> Connector:
    return store.create_connector(
        db_session,
        organization_id=org.id,
        name="main",
        config=LIMITS,
        api_key=SecretStr("re_test_key"),
        keyring=keyring,
        actor="test",
    )


def audit_actions(session: Session, connector_id: uuid.UUID) -> list[str]:
    rows = session.scalars(
        select(AuditLog).where(AuditLog.connector_id == connector_id).order_by(AuditLog.created_at)
    )
    return [row.action for row in rows]


def test_create_connector_stores_the_key_encrypted(
    db_session: Session, connector: Connector, keyring: KeyRing
) -> None:
    assert connector.credentials_ciphertext is not None
    assert b"re_test_key" not in connector.credentials_ciphertext
    assert store.get_api_key(connector, keyring) == SecretStr("re_test_key")


def test_create_connector_is_audited(db_session: Session, connector: Connector) -> None:
    assert audit_actions(db_session, connector.id) == ["connector.create"]


def test_create_connector_refuses_bad_limits_naming_each_field(
    db_session: Session, org: Organization
) -> None:
    with pytest.raises(PayloadInvalid) as caught:
        store.create_connector(
            db_session,
            organization_id=org.id,
            name="bad",
            config={"rate_limit_per_hour": 0, "rate_limit_per_day": -5},
            actor="test",
        )

    assert "RATE_LIMIT_PER_HOUR" in str(caught.value).upper()
    assert "RATE_LIMIT_PER_DAY" in str(caught.value).upper()


def test_day_limit_below_hour_limit_is_refused(db_session: Session, org: Organization) -> None:
    with pytest.raises(PayloadInvalid, match="rate_limit_per_day: must not be below"):
        store.create_connector(
            db_session,
            organization_id=org.id,
            name="bad",
            config={"rate_limit_per_hour": 100, "rate_limit_per_day": 10},
            actor="test",
        )


def test_create_connector_for_unknown_organization_is_refused(db_session: Session) -> None:
    with pytest.raises(OrganizationNotFound):
        store.create_connector(db_session, organization_id=uuid.uuid4(), name="x", config={}, actor="test")


@pytest.mark.parametrize("bad_id", [str(uuid.uuid4()), "not-a-uuid"], ids=["unknown-uuid", "not-a-uuid"])
def test_get_unknown_connector_raises_not_found(db_session: Session, bad_id: str) -> None:
    with pytest.raises(ConnectorNotFound):
        store.get_connector(db_session, bad_id)


def test_update_limits_records_before_and_after(db_session: Session, connector: Connector) -> None:
    store.update_limits(db_session, connector.id, per_hour=10, per_day=20, actor="ops")

    entry = db_session.scalars(select(AuditLog).where(AuditLog.action == "connector.limits_set")).one()
    assert entry.details["before"] == {
        "rate_limit_per_hour": 50,
        "rate_limit_per_day": 500,
        "reserve_transactional_per_hour": 0,
        "reserve_transactional_per_day": 0,
    }
    assert entry.details["after"] == {
        "rate_limit_per_hour": 10,
        "rate_limit_per_day": 20,
        "reserve_transactional_per_hour": 0,
        "reserve_transactional_per_day": 0,
    }
    assert entry.actor == "ops"


def test_pause_and_resume_are_audited_with_reason(db_session: Session, connector: Connector) -> None:
    store.pause(db_session, connector.id, actor="ops", reason="maintenance")
    assert connector.status == "paused"
    store.resume(db_session, connector.id, actor="ops")

    assert connector.status == "active"
    assert audit_actions(db_session, connector.id) == [
        "connector.create",
        "connector.pause",
        "connector.resume",
    ]


def test_setting_the_same_status_writes_no_audit_row(db_session: Session, connector: Connector) -> None:
    store.set_status(db_session, connector, "active", actor="beat")

    assert audit_actions(db_session, connector.id) == ["connector.create"]


def test_set_api_key_replaces_the_key(db_session: Session, connector: Connector, keyring: KeyRing) -> None:
    store.set_api_key(db_session, connector.id, SecretStr("re_new_key"), keyring=keyring, actor="ops")

    assert store.get_api_key(connector, keyring) == SecretStr("re_new_key")
    assert audit_actions(db_session, connector.id)[-1] == "connector.key_set"


def test_record_usage_adds_within_the_hour(db_session: Session, connector: Connector) -> None:
    store.record_usage(db_session, connector.id, emails=3, requests=1)
    store.record_usage(db_session, connector.id, emails=100, requests=1)

    emails = db_session.scalars(
        select(ConnectorUsage.emails_sent).where(ConnectorUsage.connector_id == connector.id)
    ).all()
    assert emails == [103]


def test_audit_trail_outlives_its_connector(db_session: Session, connector: Connector) -> None:
    store.pause(db_session, connector.id, actor="ops")
    db_session.delete(connector)
    db_session.flush()

    assert db_session.get(Connector, connector.id) is None
    assert audit_actions(db_session, connector.id) == ["connector.create", "connector.pause"]


def test_config_refuses_secret_looking_fields(db_session: Session, org: Organization) -> None:
    with pytest.raises(PayloadInvalid, match="api_key look like secrets") as caught:
        store.create_connector(
            db_session,
            organization_id=org.id,
            name="leaky",
            config={**LIMITS, "api_key": "re_plaintext"},
            actor="ops",
        )

    assert "re_plaintext" not in str(caught.value)
