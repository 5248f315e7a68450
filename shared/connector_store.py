"""Organizations and connectors in PostgreSQL. Every change writes its audit row.

Functions take a session and add to its transaction; the caller commits (``shared.db.transaction``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared import audit
from shared.connector_config import ConnectorConfig, parse_connector_config
from shared.crypto import KeyRing
from shared.errors import AlreadyExists, ConnectorNotFound, OrganizationNotFound, PayloadInvalid
from shared.models import Connector, ConnectorStatus, ConnectorUsage, Organization

#: last_error is shown to operators; keep it short.
MAX_ERROR_LENGTH = 500


def create_organization(session: Session, name: str, *, actor: str) -> Organization:
    """Create an organization."""
    if not name.strip():
        raise PayloadInvalid("organization name must not be empty")
    organization = Organization(id=uuid.uuid4(), name=name.strip())
    session.add(organization)
    audit.record(
        session,
        action="organization.create",
        actor=actor,
        organization_id=organization.id,
        target=f"organization:{organization.id}",
        details={"name": organization.name},
    )
    return organization


def get_organization(session: Session, organization_id: uuid.UUID | str) -> Organization:
    """The organization, or :class:`OrganizationNotFound`."""
    organization = session.get(Organization, _as_uuid(organization_id, OrganizationNotFound))
    if organization is None:
        raise OrganizationNotFound(f"organization {organization_id} does not exist")
    return organization


def list_organizations(session: Session) -> list[Organization]:
    """Every organization, oldest first."""
    return list(session.scalars(select(Organization).order_by(Organization.created_at, Organization.id)))


def validate_connector_config(config: dict[str, Any]) -> ConnectorConfig:
    """Parse a connector config, or raise :class:`~shared.errors.FieldsInvalid` naming every bad field."""
    return parse_connector_config(config)


def create_connector(
    session: Session,
    *,
    organization_id: uuid.UUID | str,
    name: str,
    config: dict[str, Any],
    actor: str,
    api_key: SecretStr | None = None,
    keyring: KeyRing | None = None,
    type: str = "resend",
) -> Connector:
    """Create a connector, encrypting ``api_key`` with ``keyring`` when one is given.

    Raises :class:`AlreadyExists` when the organization has a connector of that name.
    """
    organization = get_organization(session, organization_id)
    parsed = validate_connector_config(config)
    taken = select(Connector.id).where(Connector.organization_id == organization.id, Connector.name == name)
    if session.scalars(taken).first() is not None:
        raise AlreadyExists(f"organization {organization.id} already has a connector named {name!r}")
    connector = Connector(
        id=uuid.uuid4(),
        organization_id=organization.id,
        type=type,
        name=name,
        config=parsed.model_dump(exclude_none=True),
        status=ConnectorStatus.ACTIVE,
    )
    session.add(connector)
    if api_key is not None:
        _seal_key(connector, api_key, _require(keyring))
    audit.record(
        session,
        action="connector.create",
        actor=actor,
        organization_id=organization.id,
        connector_id=connector.id,
        target=f"connector:{connector.id}",
        details={"name": name, "type": type, "config": connector.config, "key_set": api_key is not None},
    )
    session.flush()
    return connector


def get_connector(session: Session, connector_id: uuid.UUID | str, *, for_update: bool = False) -> Connector:
    """The connector, or :class:`ConnectorNotFound`."""
    query = select(Connector).where(Connector.id == _as_uuid(connector_id, ConnectorNotFound))
    if for_update:
        query = query.with_for_update()
    connector = session.scalars(query).one_or_none()
    if connector is None:
        raise ConnectorNotFound(f"connector {connector_id} does not exist")
    return connector


def list_connectors(session: Session, organization_id: uuid.UUID | None = None) -> list[Connector]:
    """Connectors, optionally of one organization, oldest first."""
    query = select(Connector).order_by(Connector.created_at, Connector.id)
    if organization_id is not None:
        query = query.where(Connector.organization_id == organization_id)
    return list(session.scalars(query))


def update_limits(
    session: Session,
    connector_id: uuid.UUID | str,
    *,
    per_hour: int,
    per_day: int,
    actor: str,
    reserve_per_hour: int | None = None,
    reserve_per_day: int | None = None,
) -> Connector:
    """Set the hour and day budgets of a connector, and their transactional reserves when given
    (otherwise the reserves stay as they are)."""
    connector = get_connector(session, connector_id, for_update=True)
    before = dict(connector.config)
    changes: dict[str, Any] = {"rate_limit_per_hour": per_hour, "rate_limit_per_day": per_day}
    if reserve_per_hour is not None:
        changes["reserve_transactional_per_hour"] = reserve_per_hour
    if reserve_per_day is not None:
        changes["reserve_transactional_per_day"] = reserve_per_day
    parsed = validate_connector_config({**before, **changes})
    connector.config = parsed.model_dump(exclude_none=True)
    _audit(
        session,
        connector,
        "connector.limits_set",
        actor,
        details={"before": _limits(before), "after": _limits(connector.config)},
    )
    return connector


def set_api_key(
    session: Session, connector_id: uuid.UUID | str, api_key: SecretStr, *, keyring: KeyRing, actor: str
) -> Connector:
    """Encrypt and store a new API key for the connector."""
    connector = get_connector(session, connector_id, for_update=True)
    _seal_key(connector, api_key, keyring)
    _audit(
        session,
        connector,
        "connector.key_set",
        actor,
        details={"key_version": connector.credentials_key_version},
    )
    return connector


def get_api_key(connector: Connector, keyring: KeyRing | None) -> SecretStr | None:
    """The connector's decrypted API key, or None when it has none stored."""
    if connector.credentials_ciphertext is None or connector.credentials_key_version is None:
        return None
    plain = _require(keyring).decrypt(
        connector.credentials_ciphertext, connector.credentials_key_version, connector_id=connector.id
    )
    return SecretStr(plain)


def pause(
    session: Session, connector_id: uuid.UUID | str, *, actor: str, reason: str | None = None
) -> Connector:
    """Pause a connector: it sends nothing until resumed."""
    return set_status(
        session,
        get_connector(session, connector_id, for_update=True),
        ConnectorStatus.PAUSED,
        actor=actor,
        reason=reason,
        action="connector.pause",
    )


def resume(
    session: Session, connector_id: uuid.UUID | str, *, actor: str, reason: str | None = None
) -> Connector:
    """Resume a paused connector."""
    connector = get_connector(session, connector_id, for_update=True)
    connector.last_error = None
    return set_status(
        session, connector, ConnectorStatus.ACTIVE, actor=actor, reason=reason, action="connector.resume"
    )


def set_status(
    session: Session,
    connector: Connector,
    status: str,
    *,
    actor: str,
    reason: str | None = None,
    action: str = "connector.status_change",
) -> Connector:
    """Change a connector's status, auditing the change (a no-op change writes nothing)."""
    previous = connector.status
    if previous == status:
        return connector
    connector.status = status
    _audit(session, connector, action, actor, reason=reason, details={"from": previous, "to": status})
    return connector


def record_check(
    session: Session, connector: Connector, *, error: str | None, rejected: bool, now: datetime, actor: str
) -> None:
    """A key check's result (beat's status check, ``pilot connector test``): ``last_checked_at`` and
    ``last_error``; a rejected key makes the connector ``error``, a passing check brings an ``error``
    connector back to ``active`` (an operator's pause stays)."""
    connector.last_checked_at = now
    set_last_error(connector, error)
    if rejected:
        set_status(session, connector, ConnectorStatus.ERROR, actor=actor, reason=error)
    elif error is None and connector.status == ConnectorStatus.ERROR:
        set_status(session, connector, ConnectorStatus.ACTIVE, actor=actor, reason="status check passed")


def set_last_error(connector: Connector, error: str | None) -> None:
    """Remember the latest error (already scrubbed by whoever raised it), truncated."""
    connector.last_error = None if error is None else error[:MAX_ERROR_LENGTH]


def record_usage(
    session: Session, connector_id: uuid.UUID, *, emails: int, requests: int, at: datetime | None = None
) -> None:
    """Add ``emails`` and ``requests`` to the connector's usage in the hour of ``at`` (now)."""
    hour = (at or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    statement = insert(ConnectorUsage).values(
        connector_id=connector_id, hour=hour, emails_sent=emails, requests=requests
    )
    statement = statement.on_conflict_do_update(
        index_elements=[ConnectorUsage.connector_id, ConnectorUsage.hour],
        set_={
            "emails_sent": ConnectorUsage.emails_sent + statement.excluded.emails_sent,
            "requests": ConnectorUsage.requests + statement.excluded.requests,
        },
    )
    session.execute(statement)


def _seal_key(connector: Connector, api_key: SecretStr, keyring: KeyRing) -> None:
    sealed = keyring.encrypt(api_key.get_secret_value(), connector_id=connector.id)
    connector.credentials_ciphertext = sealed.ciphertext
    connector.credentials_key_version = sealed.key_version


def _audit(
    session: Session,
    connector: Connector,
    action: str,
    actor: str,
    *,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    audit.record(
        session,
        action=action,
        actor=actor,
        organization_id=connector.organization_id,
        connector_id=connector.id,
        target=f"connector:{connector.id}",
        reason=reason,
        details=details,
    )


#: The config fields ``update_limits`` sets (and audits, before and after).
LIMIT_FIELDS = (
    "rate_limit_per_hour",
    "rate_limit_per_day",
    "reserve_transactional_per_hour",
    "reserve_transactional_per_day",
)


def _limits(config: dict[str, Any]) -> dict[str, Any]:
    return {k: config[k] for k in LIMIT_FIELDS if k in config}


def _require(keyring: KeyRing | None) -> KeyRing:
    if keyring is None:
        raise PayloadInvalid("storing or reading a connector API key needs PILOT_ENCRYPTION_KEYS")
    return keyring


def _as_uuid(value: uuid.UUID | str, error: type[Exception]) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise error(f"{value!r} is not a valid id") from None
