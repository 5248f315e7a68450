"""Build a connector from its ``connectors`` row: load, check status, decrypt, wire collaborators.

Used by :func:`shared.connectors.registry.create_connector` and each type's own factory (such as
``create_resend_connector``). Defaults come from :func:`shared.settings.get_settings`; the engine,
the Redis client and the HTTP client are one per process, never one per call.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from shared import connector_store as store
from shared.connectors.recording import ConnectorRecorder, DatabaseRecorder
from shared.crypto import KeyRing
from shared.db import make_engine, make_sessionmaker, transaction
from shared.errors import ConfigError, ConnectorPaused
from shared.models import Connector, ConnectorStatus
from shared.rate_limit import RateLimiter
from shared.resend_client import process_http_client
from shared.resend_http import ResendHTTP
from shared.sending.context import SendContext
from shared.sending.scheduling import ReservingScheduler
from shared.settings import Settings, get_settings
from shared.task_producer import TaskProducer

if TYPE_CHECKING:
    from shared.connectors.base import BaseConnector, UsageLimiter

#: A connector in one of these may not be loaded for sending (``include_inactive`` loads it anyway).
INACTIVE_STATUSES = frozenset({ConnectorStatus.PAUSED, ConnectorStatus.ERROR})


@dataclass(frozen=True)
class ConnectorContext:
    """What a connector type needs to build itself from its row (``sending``: the send path's
    collaborators, made on first use)."""

    settings: Settings
    keyring: KeyRing | None
    http: ResendHTTP
    limiter: UsageLimiter
    recorder: ConnectorRecorder
    sending: Callable[[], SendContext] | None = None


def load_connector(
    connector_id: uuid.UUID | str,
    *,
    types: Mapping[str, type[BaseConnector]],
    session_factory: sessionmaker[Session] | None = None,
    settings: Settings | None = None,
    http: ResendHTTP | None = None,
    limiter: UsageLimiter | None = None,
    include_inactive: bool = False,
) -> BaseConnector:
    """The connector of ``connector_id`` as an instance of its type from ``types``.

    Raises :class:`ConnectorNotFound` for an unknown id, :class:`ConfigError` for a type not in
    ``types`` and :class:`ConnectorPaused` for a paused or failing connector.
    """
    settings = settings or get_settings()
    factory = session_factory or _default_session_factory(settings)
    with transaction(factory) as session:
        row = store.get_connector(session, connector_id)
        cls = types.get(row.type)
        if cls is None:
            raise ConfigError(f"connector {row.id} has type {row.type!r}; expected one of {sorted(types)}")
        if row.status in INACTIVE_STATUSES and not include_inactive:
            reason = f": {row.last_error}" if row.last_error else ""
            raise ConnectorPaused(f"connector {row.id} is {row.status}{reason}", connector_id=row.id)
        keyring = KeyRing.from_settings(settings) if settings.pilot_encryption_keys else None
        http = http or process_http_client(settings)
        limiter = limiter or _default_limiter(settings)
        context = ConnectorContext(
            settings=settings,
            keyring=keyring,
            http=http,
            limiter=limiter,
            recorder=DatabaseRecorder(factory),
            sending=_send_context(settings, factory, keyring, http, limiter),
        )
        return cls.from_record(row, context)


def stored_api_key(row: Connector, context: ConnectorContext) -> SecretStr | None:
    """The row's decrypted API key; None when it stores none. Raises if it does not decrypt.

    A key that fails to decrypt is an error, never a silent fall back to another account's key.
    """
    if row.credentials_ciphertext is not None and context.keyring is None:
        raise ConfigError(f"connector {row.id} has a stored API key; set PILOT_ENCRYPTION_KEYS to read it")
    return store.get_api_key(row, context.keyring)


def base_arguments(row: Connector, context: ConnectorContext) -> dict[str, Any]:
    """The :class:`BaseConnector` constructor arguments for ``row``."""
    return {
        "connector_id": row.id,
        "config": dict(row.config or {}),
        "name": row.name,
        "status": row.status,
        "limiter": context.limiter,
        "recorder": context.recorder,
        "last_error": row.last_error,
        "last_checked_at": row.last_checked_at,
    }


_session_factories: dict[str, sessionmaker[Session]] = {}
_limiters: dict[tuple[str, str, float], RateLimiter] = {}


def _default_session_factory(settings: Settings) -> sessionmaker[Session]:
    # One engine (pool) per database per process; make_engine disposes inherited pools after fork.
    factory = _session_factories.get(settings.database_url)
    if factory is None:
        factory = _session_factories[settings.database_url] = make_sessionmaker(make_engine(settings))
    return factory


def _send_context(
    settings: Settings,
    factory: sessionmaker[Session],
    keyring: KeyRing | None,
    http: ResendHTTP,
    limiter: UsageLimiter,
) -> Callable[[], SendContext] | None:
    """The send path's context for direct sends (one per process and setup), made on first use;
    None without a rate limiter (the connector then refuses to send)."""
    if not isinstance(limiter, RateLimiter):
        return None
    engine = factory.kw["bind"]

    def build() -> SendContext:
        key = (engine, limiter, http)
        ctx = _send_contexts.get(key)
        if ctx is None:
            ctx = SendContext(settings=settings, engine=engine, limiter=limiter, http=http, keyring=keyring)
            producer = TaskProducer(settings.broker_url)
            ctx.scheduler = ReservingScheduler(limiter, producer.send)
            ctx = _send_contexts.setdefault(key, ctx)
        return ctx

    return build


#: One per engine, limiter and HTTP client (each of them one per process by default): a context holds
#: a database connection per thread, so one per call would drain the pool.
_send_contexts: dict[tuple[Engine, RateLimiter, ResendHTTP], SendContext] = {}


def _default_limiter(settings: Settings) -> RateLimiter:
    key = (settings.redis_url, settings.pilot_redis_prefix, settings.resend_requests_per_second)
    limiter = _limiters.get(key)
    if limiter is None:
        limiter = _limiters[key] = RateLimiter.from_settings(settings)
    return limiter
