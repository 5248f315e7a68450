"""A canary secret seeded into settings and connectors never shows in logs, errors, reprs or audit rows."""

from __future__ import annotations

import base64
import logging
import uuid

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from shared import connector_store as store
from shared.crypto import KeyRing, generate_key
from shared.db import transaction
from shared.errors import PilotError
from shared.key_rotation import rotate_keys
from shared.settings import load_settings

API_KEY_CANARY = "re_CANARY_api_key_7f3a9c"
WEBHOOK_CANARY = "whsec_" + base64.b64encode(b"CANARY-webhook-secret-0123456789").decode()
ENCRYPTION_CANARY = generate_key()
CANARIES = (API_KEY_CANARY, WEBHOOK_CANARY, WEBHOOK_CANARY.removeprefix("whsec_"), ENCRYPTION_CANARY)


@pytest.fixture
def canary_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESEND_API_KEY", API_KEY_CANARY)
    monkeypatch.setenv("RESEND_WEBHOOK_SECRET", WEBHOOK_CANARY)
    monkeypatch.setenv("PILOT_ENCRYPTION_KEYS", f"{ENCRYPTION_CANARY} {generate_key()}")


def exercise_connector_lifecycle(factory: sessionmaker[Session], keyring: KeyRing) -> list[str]:
    """Run every connector action, including failures; return the texts they produced."""
    texts: list[str] = []
    with transaction(factory) as session:
        org = store.create_organization(session, "Canary Inc", actor="test")
        connector = store.create_connector(
            session,
            organization_id=org.id,
            name="canary",
            config={"default_from": "a@b.test"},
            api_key=SecretStr(API_KEY_CANARY),
            keyring=keyring,
            actor="test",
        )
        try:
            store.create_connector(
                session,
                organization_id=org.id,
                name="canary in config",
                config={"default_from": "a@b.test", "api_key": API_KEY_CANARY},
                actor="test",
            )
        except PilotError as exc:
            texts += [str(exc), repr(exc)]
        store.set_api_key(session, connector.id, SecretStr(API_KEY_CANARY), keyring=keyring, actor="test")
        store.pause(session, connector.id, actor="test", reason="canary")
        store.resume(session, connector.id, actor="test")
        texts += [repr(connector), str(connector.config), repr(store.get_api_key(connector, keyring))]
        try:
            keyring.decrypt(
                connector.credentials_ciphertext or b"",
                connector.credentials_key_version or "",
                connector_id=uuid.uuid4(),
            )
        except PilotError as exc:
            texts += [str(exc), repr(exc)]
    rotate_keys(factory, keyring, actor="test")
    return texts


def database_text(factory: sessionmaker[Session]) -> str:
    with factory() as session:
        rows = session.execute(text("SELECT row_to_json(a)::text FROM audit_logs a")).scalars().all()
        connectors = session.execute(text("SELECT config::text FROM connectors")).scalars().all()
    return "\n".join([*rows, *connectors])


def test_canary_never_appears(
    canary_env: None, session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    settings = load_settings()
    keyring = KeyRing.from_settings(settings)

    texts = [repr(settings), str(settings), repr(keyring), str(settings.model_dump())]
    texts += exercise_connector_lifecycle(session_factory, keyring)
    for variable, value in [
        ("RESEND_WEBHOOK_SECRET", WEBHOOK_CANARY[:-6]),
        ("PILOT_ENCRYPTION_KEYS", ENCRYPTION_CANARY[:-3]),
    ]:
        try:
            load_settings(**{variable.lower(): value})
        except PilotError as exc:
            texts += [str(exc), repr(exc)]
    texts += [record.getMessage() for record in caplog.records]
    texts.append(database_text(session_factory))

    haystack = "\n".join(texts)
    assert len(texts) > 10
    for canary in CANARIES:
        assert canary not in haystack
