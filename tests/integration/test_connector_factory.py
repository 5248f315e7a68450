"""create_resend_connector / create_connector on the real PostgreSQL: load, decrypt, refuse, record."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import fakeredis
import pytest
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from shared import connector_store as store
from shared.connectors import factory
from shared.connectors.registry import create_connector
from shared.connectors.resend import ResendConnector, create_resend_connector
from shared.crypto import KeyRing, generate_key
from shared.db import transaction
from shared.errors import ConfigError, ConnectorNotFound, ConnectorPaused
from shared.models import AuditLog, Connector, ConnectorUsage
from shared.rate_limit import RateLimiter
from shared.settings import Settings, get_settings, load_settings
from tests.fake_resend import FakeResend, error_body

pytestmark = pytest.mark.integration

STORED_KEY = "re_stored_connector_key"
FALLBACK_KEY = "re_fallback_env_key"
CONFIG = {"default_from": "News <news@acme.test>", "rate_limit_per_hour": 50, "rate_limit_per_day": 500}


@pytest.fixture
def settings(fresh_database_url: str) -> Settings:
    return load_settings(
        database_url=fresh_database_url,
        pilot_encryption_keys=generate_key(),
        resend_api_key=FALLBACK_KEY,
    )


@pytest.fixture
def resend() -> FakeResend:
    return FakeResend()


@pytest.fixture
def limiter(redis_prefix: str) -> RateLimiter:
    return RateLimiter(fakeredis.FakeRedis(), key_prefix=redis_prefix)


def add_connector(
    factory_: sessionmaker[Session],
    settings: Settings,
    *,
    api_key: str | None = STORED_KEY,
    status: str = "active",
    type_: str = "resend",
) -> uuid.UUID:
    with transaction(factory_) as session:
        org = store.create_organization(session, "Acme", actor="test")
        connector = store.create_connector(
            session,
            organization_id=org.id,
            name="main",
            config=CONFIG,
            api_key=SecretStr(api_key) if api_key else None,
            keyring=KeyRing.from_settings(settings),
            actor="test",
            type=type_,
        )
        if status != "active":
            store.set_status(session, connector, status, actor="test", reason="test")
        return connector.id


def load(
    connector_id: uuid.UUID | str,
    session_factory: sessionmaker[Session],
    settings: Settings,
    resend: FakeResend,
    limiter: RateLimiter,
    **kwargs: bool,
) -> ResendConnector:
    return create_resend_connector(
        connector_id,
        session_factory=session_factory,
        settings=settings,
        http=resend.client(),
        limiter=limiter,
        **kwargs,
    )


def row(session_factory: sessionmaker[Session], connector_id: uuid.UUID) -> Connector:
    with session_factory() as session:
        return store.get_connector(session, connector_id)


def test_create_resend_connector_decrypts_the_stored_key(
    session_factory: sessionmaker[Session], settings: Settings, resend: FakeResend, limiter: RateLimiter
) -> None:
    connector_id = add_connector(session_factory, settings)

    connector = load(connector_id, session_factory, settings, resend, limiter)
    result = connector.send_email("a@acme.test", "Hi", "<p/>")

    assert result.success
    assert resend.last.headers["Authorization"] == f"Bearer {STORED_KEY}"
    assert resend.last_json()["from"] == "News <news@acme.test>"
    assert (connector.connector_id, connector.name, connector.default_from) == (
        connector_id,
        "main",
        "News <news@acme.test>",
    )


def test_create_resend_connector_falls_back_to_resend_api_key(
    session_factory: sessionmaker[Session], settings: Settings, resend: FakeResend, limiter: RateLimiter
) -> None:
    connector_id = add_connector(session_factory, settings, api_key=None)

    load(connector_id, session_factory, settings, resend, limiter).send_email("a@acme.test", "Hi", "<p/>")

    assert resend.last.headers["Authorization"] == f"Bearer {FALLBACK_KEY}"


@pytest.mark.parametrize("connector_id", [uuid.uuid4(), "not-a-uuid"])
def test_create_resend_connector_refuses_an_unknown_connector(
    session_factory: sessionmaker[Session],
    settings: Settings,
    resend: FakeResend,
    limiter: RateLimiter,
    connector_id: uuid.UUID | str,
) -> None:
    with pytest.raises(ConnectorNotFound):
        load(connector_id, session_factory, settings, resend, limiter)


@pytest.mark.parametrize("status", ["paused", "error"])
def test_create_resend_connector_refuses_an_inactive_connector(
    session_factory: sessionmaker[Session],
    settings: Settings,
    resend: FakeResend,
    limiter: RateLimiter,
    status: str,
) -> None:
    connector_id = add_connector(session_factory, settings, status=status)

    with pytest.raises(ConnectorPaused, match=f"connector {connector_id} is {status}"):
        load(connector_id, session_factory, settings, resend, limiter)


def test_include_inactive_loads_a_paused_connector_for_status_checks(
    session_factory: sessionmaker[Session], settings: Settings, resend: FakeResend, limiter: RateLimiter
) -> None:
    connector_id = add_connector(session_factory, settings, status="paused")
    connector = load(connector_id, session_factory, settings, resend, limiter, include_inactive=True)
    assert connector.status == "paused"
    assert connector.test_connection().success


def test_a_stored_key_without_encryption_keys_is_a_config_error(
    session_factory: sessionmaker[Session], settings: Settings, resend: FakeResend, limiter: RateLimiter
) -> None:
    connector_id = add_connector(session_factory, settings)
    without_keys = settings.model_copy(update={"pilot_encryption_keys": []})

    with pytest.raises(ConfigError, match="PILOT_ENCRYPTION_KEYS"):
        load(connector_id, session_factory, without_keys, resend, limiter)


def test_sends_are_recorded_in_connector_usage(
    session_factory: sessionmaker[Session], settings: Settings, resend: FakeResend, limiter: RateLimiter
) -> None:
    connector_id = add_connector(session_factory, settings)
    connector = load(connector_id, session_factory, settings, resend, limiter)

    connector.send_email("a@acme.test", "Hi", "<p/>")
    connector.send_batch([{"to": f"r{n}@acme.test", "subject": "S", "body": "<p/>"} for n in range(3)])

    with session_factory() as session:
        usage = session.scalars(
            select(ConnectorUsage).where(ConnectorUsage.connector_id == connector_id)
        ).one()
    assert (usage.emails_sent, usage.requests) == (4, 2)


def test_a_key_error_puts_the_connector_in_error_with_an_audit_row(
    session_factory: sessionmaker[Session], settings: Settings, resend: FakeResend, limiter: RateLimiter
) -> None:
    connector_id = add_connector(session_factory, settings)
    connector = load(connector_id, session_factory, settings, resend, limiter)
    resend.reply(403, error_body(403, "invalid_api_key", "API key is invalid"))

    connector.send_email("a@acme.test", "Hi", "<p/>")

    stored = row(session_factory, connector_id)
    assert (stored.status, stored.last_error) == ("error", "403 invalid_api_key: API key is invalid")
    with session_factory() as session:
        audit = session.scalars(
            select(AuditLog).where(
                AuditLog.connector_id == connector_id, AuditLog.action == "connector.status_change"
            )
        ).one()
    assert (audit.action, audit.details) == ("connector.status_change", {"from": "active", "to": "error"})


def test_test_connection_records_the_check(
    session_factory: sessionmaker[Session], settings: Settings, resend: FakeResend, limiter: RateLimiter
) -> None:
    connector_id = add_connector(session_factory, settings)
    connector = load(connector_id, session_factory, settings, resend, limiter)
    resend.reply(403, error_body(403, "invalid_api_key", "API key is invalid"))

    connector.test_connection()

    stored = row(session_factory, connector_id)
    assert stored.last_checked_at is not None
    assert stored.last_error == "403 invalid_api_key: API key is invalid"


def test_create_connector_builds_the_registered_type(
    session_factory: sessionmaker[Session], settings: Settings, resend: FakeResend, limiter: RateLimiter
) -> None:
    connector_id = add_connector(session_factory, settings)
    connector = create_connector(
        connector_id,
        session_factory=session_factory,
        settings=settings,
        http=resend.client(),
        limiter=limiter,
    )
    assert isinstance(connector, ResendConnector)


def test_create_connector_refuses_an_unregistered_type(
    session_factory: sessionmaker[Session], settings: Settings, resend: FakeResend, limiter: RateLimiter
) -> None:
    connector_id = add_connector(session_factory, settings, type_="carrier-pigeon")
    with pytest.raises(ConfigError, match="carrier-pigeon"):
        create_connector(
            connector_id,
            session_factory=session_factory,
            settings=settings,
            http=resend.client(),
            limiter=limiter,
        )


@pytest.fixture
def environment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process settings pointed at this test's database; default collaborators dropped after."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PILOT_ENCRYPTION_KEYS", settings.pilot_encryption_keys[0].get_secret_value())
    monkeypatch.setenv("RESEND_BASE_URL", "http://127.0.0.1:9")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    for session_factory in factory._session_factories.values():
        engine = session_factory.kw["bind"]
        engine.dispose()
    factory._session_factories.clear()
    factory._limiters.clear()


def test_create_resend_connector_works_with_only_the_id(environment: None, settings: Settings) -> None:
    connector_id = add_connector(factory._default_session_factory(get_settings()), settings)

    connector = create_resend_connector(connector_id)

    assert isinstance(connector, ResendConnector)
    assert connector.validate_config() == []


def test_an_echoed_key_reaches_neither_the_row_nor_the_audit_log(
    session_factory: sessionmaker[Session], settings: Settings, resend: FakeResend, limiter: RateLimiter
) -> None:
    # Given an answer that (carelessly) echoes the API key back, on a key error and a check
    connector_id = add_connector(session_factory, settings)
    connector = load(connector_id, session_factory, settings, resend, limiter)
    resend.reply(403, error_body(403, "invalid_api_key", f"key {STORED_KEY} is invalid"))
    resend.reply(403, error_body(403, "invalid_api_key", f"key {STORED_KEY} is invalid"))

    connector.send_email("a@acme.test", "Hi", "<p/>")
    connector.test_connection()

    with session_factory() as session:
        stored = (
            session.execute(
                text(
                    "SELECT row_to_json(c)::text FROM connectors c"
                    " UNION ALL SELECT row_to_json(a)::text FROM audit_logs a"
                )
            )
            .scalars()
            .all()
        )
    assert "[api key]" in "".join(stored)
    assert not [line for line in stored if STORED_KEY in line]
