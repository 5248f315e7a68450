"""Settings: read from the environment once, errors name the variable and never its value."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.settings import load_settings

SECRET_24 = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_defaults_point_at_loopback_services() -> None:
    settings = load_settings()

    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.broker_url == settings.redis_url


def test_broker_url_follows_redis_url_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/5")

    assert load_settings().broker_url == "redis://127.0.0.1:6379/5"


def test_plain_postgresql_url_gets_the_psycopg3_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")

    assert load_settings().database_url == "postgresql+psycopg://u@h/db"


def test_webhook_secrets_are_space_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESEND_WEBHOOK_SECRET", f"{SECRET_24} MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")

    assert len(load_settings().resend_webhook_secret) == 2


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://root@h/db"),
        ("REDIS_URL", "http://not-redis"),
        ("RESEND_WEBHOOK_SECRET", "whsec_YQ=="),
        ("RESEND_WEBHOOK_SECRET", "whsec_!!!!"),
        ("PILOT_ENCRYPTION_KEYS", "too-short"),
        ("RESEND_REQUESTS_PER_SECOND", "-1"),
        ("PILOT_LOG_FORMAT", "xml"),
        ("PILOT_LOG_LEVEL", "LOUD"),
    ],
)
def test_malformed_value_names_the_variable_not_the_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert variable in str(caught.value)
    assert value not in str(caught.value)


def test_log_level_is_read_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PILOT_LOG_LEVEL", "debug")

    assert load_settings().pilot_log_level == "DEBUG"


def test_a_refused_value_is_described_without_pydantics_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "http://not-redis")

    with pytest.raises(ConfigError, match=r"^invalid configuration: REDIS_URL: must be a redis:// URL$"):
        load_settings()


def test_repr_masks_secrets_and_url_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:hunter2@db/pilot")
    monkeypatch.setenv("RESEND_API_KEY", "re_canary_settings")

    text = repr(load_settings())

    assert "hunter2" not in text
    assert "re_canary_settings" not in text
