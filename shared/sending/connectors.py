"""A connector as the send path needs it (organization, limits, sender default, decrypted key), cached.

Each worker process keeps what it read for :data:`CACHE_TTL_S` seconds, so a single send reads no
connector row and decrypts no key. The connector's *status* is not taken from here: the dispatcher
reads it live with its claim (a pause or an ``error`` applies at once); a changed key, budget or
``default_from`` applies within the TTL.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import SecretStr, ValidationError

from shared import connector_store as store
from shared.connector_config import ConnectorConfig
from shared.crypto import KeyRing
from shared.errors import ConfigError, CryptoError, PayloadInvalid
from shared.models import SENDABLE_STATUSES, Connector
from shared.rate_limit import ConnectorLimits

#: Seconds a process trusts what it read of a connector (key, limits, sender default).
CACHE_TTL_S = 2.0


@dataclass(frozen=True)
class ConnectorView:
    """What sending needs of a connector; ``blocked`` says why it cannot send (else ``api_key`` is set)."""

    id: uuid.UUID
    organization_id: uuid.UUID
    default_from: str | None
    limits: ConnectorLimits
    api_key: SecretStr | None
    blocked: str | None


def limits_of(connector: Connector) -> ConnectorLimits:
    """The connector's hour and day budgets (the defaults if its config is unreadable)."""
    try:
        config = ConnectorConfig.model_validate(connector.config)
    except ValidationError:
        config = ConnectorConfig()
    return config.limits()


def credentials(
    connector: Connector, keyring: KeyRing | None, fallback: SecretStr | None
) -> tuple[SecretStr | None, str | None]:
    """The API key, or why the connector cannot send now."""
    if connector.status not in SENDABLE_STATUSES:
        return None, f"connector is {connector.status}"
    try:
        key = store.get_api_key(connector, keyring)
    except (CryptoError, ConfigError, PayloadInvalid) as exc:
        return None, f"connector key unreadable: {exc}"
    key = key or fallback
    if key is None:
        return None, "no API key (connector credentials or RESEND_API_KEY)"
    return key, None


def view_of(connector: Connector, keyring: KeyRing | None, fallback: SecretStr | None) -> ConnectorView:
    """A :class:`ConnectorView` of an ORM connector (decrypts its key)."""
    api_key, blocked = credentials(connector, keyring, fallback)
    try:
        default_from = ConnectorConfig.model_validate(connector.config).default_from
    except ValidationError:
        default_from = None
    return ConnectorView(
        connector.id, connector.organization_id, default_from, limits_of(connector), api_key, blocked
    )


class ConnectorCache:
    """Connector views by id, each kept for ``ttl`` seconds (thread-safe; one per process)."""

    def __init__(self, *, ttl: float = CACHE_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._views: dict[uuid.UUID, tuple[float, ConnectorView]] = {}
        self._lock = threading.Lock()

    def get(self, connector_id: uuid.UUID, load: Callable[[], ConnectorView | None]) -> ConnectorView | None:
        """The cached view, or ``load()``'s (None: no such connector, not cached)."""
        now = self._clock()
        with self._lock:
            entry = self._views.get(connector_id)
        if entry is not None and now - entry[0] < self._ttl:
            return entry[1]
        view = load()
        if view is not None:
            with self._lock:
                self._views[connector_id] = (now, view)
        return view

    def forget(self, connector_id: uuid.UUID) -> None:
        """Drop a connector (its status or key changed here: read it afresh next time)."""
        with self._lock:
            self._views.pop(connector_id, None)
