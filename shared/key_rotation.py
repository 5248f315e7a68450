"""Re-encrypt every stored connector key under the current encryption key.

Each connector is rotated in its own short transaction (row locked, re-sealed, audited), so the
command can be killed at any point and run again: finished rows are skipped, none is half-done.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared import audit
from shared.crypto import KeyRing
from shared.db import transaction
from shared.models import Connector


@dataclass(frozen=True)
class RotationReport:
    """How many connectors were re-encrypted and how many were already current."""

    rotated: int
    already_current: int


def rotate_keys(factory: sessionmaker[Session], keyring: KeyRing, *, actor: str) -> RotationReport:
    """Re-seal every connector key that is not under ``keyring``'s current key."""
    rotated = 0
    for connector_id in _stale_connector_ids(factory, keyring):
        with transaction(factory) as session:
            if _rotate_one(session, connector_id, keyring, actor=actor):
                rotated += 1
    with factory() as session:
        current = session.scalar(
            select(func.count())
            .select_from(Connector)
            .where(Connector.credentials_key_version == keyring.current_version)
        )
    return RotationReport(rotated=rotated, already_current=int(current or 0) - rotated)


def _stale_connector_ids(factory: sessionmaker[Session], keyring: KeyRing) -> list[uuid.UUID]:
    with factory() as session:
        return list(
            session.scalars(
                select(Connector.id).where(
                    Connector.credentials_key_version.is_not(None),
                    Connector.credentials_key_version != keyring.current_version,
                )
            )
        )


def _rotate_one(session: Session, connector_id: uuid.UUID, keyring: KeyRing, *, actor: str) -> bool:
    connector = session.scalars(select(Connector).where(Connector.id == connector_id).with_for_update()).one()
    if not keyring.needs_rotation(connector.credentials_key_version):
        return False  # rotated by a concurrent run
    assert connector.credentials_ciphertext is not None and connector.credentials_key_version is not None
    old_version = connector.credentials_key_version
    plain = keyring.decrypt(connector.credentials_ciphertext, old_version, connector_id=connector.id)
    sealed = keyring.encrypt(plain, connector_id=connector.id)
    connector.credentials_ciphertext = sealed.ciphertext
    connector.credentials_key_version = sealed.key_version
    audit.record(
        session,
        action="connector.key_rotated",
        actor=actor,
        organization_id=connector.organization_id,
        connector_id=connector.id,
        target=f"connector:{connector.id}",
        details={"from_version": old_version, "to_version": sealed.key_version},
    )
    return True
