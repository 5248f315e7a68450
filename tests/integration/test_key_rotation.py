"""`pilot keys rotate`: every key re-sealed under the first key; safe to kill and rerun."""

from __future__ import annotations

from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from shared import connector_store as store
from shared.crypto import KeyRing, generate_key
from shared.db import transaction
from shared.key_rotation import rotate_keys
from shared.models import AuditLog, Connector
from shared.settings import load_settings

OLD, NEW = generate_key(), generate_key()


def ring(*keys: str) -> KeyRing:
    return KeyRing.from_settings(load_settings(pilot_encryption_keys=" ".join(keys)))


def seed_connectors(factory: sessionmaker[Session], count: int) -> None:
    with transaction(factory) as session:
        org = store.create_organization(session, "Acme", actor="test")
        for index in range(count):
            store.create_connector(
                session,
                organization_id=org.id,
                name=f"c{index}",
                config={},
                api_key=SecretStr(f"re_key_{index}"),
                keyring=ring(OLD),
                actor="test",
            )


def keys_by_name(factory: sessionmaker[Session], keyring: KeyRing) -> dict[str, str]:
    with factory() as session:
        return {
            c.name: store.get_api_key(c, keyring).get_secret_value()  # type: ignore[union-attr]
            for c in session.query(Connector)
        }


def test_rotate_reseals_every_key_under_the_first_key(session_factory: sessionmaker[Session]) -> None:
    seed_connectors(session_factory, 3)

    report = rotate_keys(session_factory, ring(NEW, OLD), actor="ops")

    assert report.rotated == 3
    assert keys_by_name(session_factory, ring(NEW)) == {f"c{i}": f"re_key_{i}" for i in range(3)}


def test_rerun_after_rotation_changes_nothing(session_factory: sessionmaker[Session]) -> None:
    seed_connectors(session_factory, 2)
    rotate_keys(session_factory, ring(NEW, OLD), actor="ops")

    report = rotate_keys(session_factory, ring(NEW, OLD), actor="ops")

    assert (report.rotated, report.already_current) == (0, 2)


def test_interrupted_rotation_finishes_on_rerun(session_factory: sessionmaker[Session]) -> None:
    seed_connectors(session_factory, 3)
    keyring = ring(NEW, OLD)
    with transaction(session_factory) as session:  # a run killed after its first connector
        first = session.query(Connector).order_by(Connector.name).first()
        assert first is not None
        sealed = keyring.encrypt(store.get_api_key(first, keyring).get_secret_value(), connector_id=first.id)  # type: ignore[union-attr]
        first.credentials_ciphertext, first.credentials_key_version = sealed.ciphertext, sealed.key_version

    report = rotate_keys(session_factory, keyring, actor="ops")

    assert (report.rotated, report.already_current) == (2, 1)
    assert keys_by_name(session_factory, ring(NEW)) == {f"c{i}": f"re_key_{i}" for i in range(3)}


def test_each_rotation_is_audited_without_key_material(session_factory: sessionmaker[Session]) -> None:
    seed_connectors(session_factory, 1)
    rotate_keys(session_factory, ring(NEW, OLD), actor="ops")

    with session_factory() as session:
        entry = session.query(AuditLog).filter_by(action="connector.key_rotated").one()
    assert entry.details == {
        "from_version": ring(OLD).current_version,
        "to_version": ring(NEW).current_version,
    }
