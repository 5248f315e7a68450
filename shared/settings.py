"""The one settings object. It is the only reader of the environment.

Variable names are the field names in upper case (``DATABASE_URL``, ``PILOT_ENCRYPTION_KEYS``...).
Lists of secrets are space-separated. Errors name the variable, never its value.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.errors import ConfigError

#: Local defaults match the services on loopback that `make demo` and the tests use.
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/pilot"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_RESEND_BASE_URL = "https://api.resend.com"
#: Resend's documented default request rate per team (the `ratelimit-limit` header overrides it).
DEFAULT_RESEND_REQUESTS_PER_SECOND = 2.0
#: Webhook bodies above this size are refused with 413 (Resend payloads are a few kB).
DEFAULT_WEBHOOK_MAX_BODY_BYTES = 256 * 1024
#: The worker's Prometheus port (the receiver's metrics live on its own app).
DEFAULT_WORKER_METRICS_PORT = 9808
#: AES-256-GCM keys are 32 bytes.
ENCRYPTION_KEY_BYTES = 32
#: Unsubscribe keys are AES-SIV keys of 64 bytes (two AES-256 keys).
UNSUBSCRIBE_KEY_BYTES = 64

SecretList = Annotated[list[SecretStr], NoDecode]
#: Python's logging levels by name (``PILOT_LOG_LEVEL``, any case).
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    """Configuration of every process (worker, receiver, sandbox, CLI)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = DEFAULT_REDIS_URL
    celery_broker_url: str | None = None
    #: Prefix of every Redis key this project writes (rate buckets, cooldowns).
    pilot_redis_prefix: str = "pilot:"

    resend_api_key: SecretStr | None = None
    resend_base_url: str = DEFAULT_RESEND_BASE_URL
    resend_webhook_secret: SecretList = Field(default_factory=list)
    resend_requests_per_second: float = Field(default=DEFAULT_RESEND_REQUESTS_PER_SECOND, gt=0)

    pilot_encryption_keys: SecretList = Field(default_factory=list)
    #: Keys sealing unsubscribe tokens (``pilot keys generate --unsubscribe``): the first seals, all open.
    pilot_unsubscribe_keys: SecretList = Field(default_factory=list)
    #: The receiver's public base URL; unsubscribe links are ``<it>/unsubscribe/<token>``.
    pilot_public_url: str | None = None
    #: Proxies in front of the receiver whose ``X-Forwarded-For`` names the client (compose's nginx: 1).
    pilot_proxy_hops: int = Field(default=0, ge=0, le=5)

    pilot_log_format: Literal["human", "json"] = "human"
    pilot_log_level: LogLevel = "INFO"
    pilot_webhook_max_body_bytes: int = Field(default=DEFAULT_WEBHOOK_MAX_BODY_BYTES, gt=0)
    #: Port of the worker's Prometheus ``/metrics`` (served by its main process); 0 turns it off.
    pilot_worker_metrics_port: int = Field(default=DEFAULT_WORKER_METRICS_PORT, ge=0, le=65535)

    # The reputation guard (shared/reputation): the defaults every organization gets, and the limits
    # within which an organization may set its own (`pilot reputation set`).
    pilot_reputation_window_days: int = Field(default=7, ge=1, le=30)
    pilot_reputation_warn_bounce_rate: float = Field(default=0.04, gt=0, le=1)
    pilot_reputation_pause_bounce_rate: float = Field(default=0.08, gt=0, le=1)
    pilot_reputation_warn_complaint_rate: float = Field(default=0.0008, gt=0, le=1)
    pilot_reputation_pause_complaint_rate: float = Field(default=0.003, gt=0, le=1)
    pilot_reputation_min_volume: int = Field(default=200, ge=1)
    #: An organization may not pause later than these rates, nor act on fewer recipients than this.
    pilot_reputation_max_pause_bounce_rate: float = Field(default=0.10, gt=0, le=1)
    pilot_reputation_max_pause_complaint_rate: float = Field(default=0.005, gt=0, le=1)
    pilot_reputation_min_volume_floor: int = Field(default=50, ge=1)
    #: A campaign is judged on its last this many recipients with a known outcome (in slices of 100).
    pilot_reputation_campaign_window: int = Field(default=1000, ge=100, le=1_000_000)
    #: A paused organization's transactional mail leaves at most this many emails a minute.
    pilot_reputation_paused_transactional_per_minute: int = Field(default=10, ge=1, le=100_000)

    # Retention (shared/partitions): whole partitions are dropped once past these; suppressions never.
    #: Raw webhook bodies are kept this long after they are applied (an unapplied one is never dropped).
    pilot_webhook_body_retention_days: int = Field(default=14, ge=1)
    #: Delivery metrics are kept this many months; their daily per-task and per-connector rollups stay.
    pilot_metrics_retention_months: int = Field(default=13, ge=1)
    #: A day of request bodies is dropped this long after it ends (those of rows that may still leave are
    #: carried into the current day first).
    pilot_request_body_retention_hours: int = Field(default=24, ge=1)
    #: Ledger rows (``email_messages``) are kept this many months, then a month is dropped whole once
    #: its daily totals are written and none of its rows may still leave.
    pilot_ledger_retention_months: int = Field(default=13, ge=1)
    #: Outcome events (the outbox) are kept this many days after they are published (an unpublished
    #: one is never dropped).
    pilot_outcome_events_retention_days: int = Field(default=7, ge=1)

    @field_validator(
        "resend_webhook_secret", "pilot_encryption_keys", "pilot_unsubscribe_keys", mode="before"
    )
    @classmethod
    def _split_spaces(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.split()
        return value

    @field_validator("pilot_log_level", mode="before")
    @classmethod
    def _level_in_upper_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _psycopg3_driver(cls, value: str) -> str:
        for prefix in ("postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value.removeprefix(prefix)
        if not value.startswith("postgresql+psycopg://"):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url", "celery_broker_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return value

    @field_validator("resend_webhook_secret")
    @classmethod
    def _webhook_secrets_decode(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        for index, secret in enumerate(secrets, start=1):
            size = _decoded_size(secret.get_secret_value().removeprefix("whsec_"))
            if size is None or not 24 <= size <= 64:
                raise ValueError(
                    f"secret #{index} must be base64 (optionally whsec_-prefixed) of 24-64 bytes"
                )
        return secrets

    @field_validator("pilot_encryption_keys")
    @classmethod
    def _encryption_keys_decode(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for index, key in enumerate(keys, start=1):
            if _decoded_size(key.get_secret_value(), urlsafe=True) != ENCRYPTION_KEY_BYTES:
                raise ValueError(f"key #{index} must be url-safe base64 of 32 bytes (pilot keys generate)")
        return keys

    @field_validator("pilot_unsubscribe_keys")
    @classmethod
    def _unsubscribe_keys_decode(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for index, key in enumerate(keys, start=1):
            if _decoded_size(key.get_secret_value(), urlsafe=True) != UNSUBSCRIBE_KEY_BYTES:
                raise ValueError(
                    f"key #{index} must be url-safe base64 of {UNSUBSCRIBE_KEY_BYTES} bytes"
                    " (pilot keys generate --unsubscribe)"
                )
        return keys

    @field_validator("pilot_public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return check_public_url(value.strip())

    @model_validator(mode="after")
    def _broker_defaults_to_redis(self) -> Settings:
        if self.celery_broker_url is None:
            object.__setattr__(self, "celery_broker_url", self.redis_url)
        return self

    def __repr_args__(self) -> Any:
        # Connection strings may carry passwords: show them masked.
        for name, value in super().__repr_args__():
            yield name, mask_url_password(value) if name in _URL_FIELDS and value else value

    @property
    def broker_url(self) -> str:
        """The Celery broker URL (``CELERY_BROKER_URL``, else ``REDIS_URL``)."""
        return self.celery_broker_url or self.redis_url


_URL_FIELDS = {"database_url", "redis_url", "celery_broker_url"}


def check_public_url(url: str) -> str:
    """``url`` without a trailing ``/``, if it is an absolute ``https://`` URL (``http://`` only for a
    loopback host) without query, fragment or credentials; else ``ValueError`` saying why."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError:
        raise ValueError("must be an absolute URL such as https://mail.example.com") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError("must be an absolute URL such as https://mail.example.com")
    if parts.scheme == "http" and not _loopback(host):
        raise ValueError("must be https:// (http:// is accepted only for a loopback host)")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must not hold a query, a fragment or credentials")
    return url.rstrip("/")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def mask_url_password(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _decoded_size(text: str, *, urlsafe: bool = False) -> int | None:
    """Length of strictly decoded base64 ``text`` (padding optional), or None if it is not base64."""
    padded = text + "=" * (-len(text) % 4)
    try:
        if urlsafe:
            return len(base64.urlsafe_b64decode(padded.encode("ascii")))
        return len(base64.b64decode(padded.encode("ascii"), validate=True))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (plus ``overrides``), or raise :class:`ConfigError`."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line per bad variable, naming it and the problem, never the value."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        variable = ".".join(str(part) for part in error["loc"][:1]).upper() or "settings"
        lines.append(f"{variable}: {error['msg'].removeprefix('Value error, ')}")
    return "invalid configuration: " + "; ".join(lines)


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once on first use."""
    return load_settings()
