"""``pilot.check_connector_status``: test each connector's API key and record what Resend said.

Connectors ``active``, ``rate_limited`` or ``error`` are checked; ``paused`` ones are left alone. A
rejected key moves a connector to ``error``, a passing check moves ``error`` back to ``active``
(:func:`shared.connector_store.record_check`, every status change audited).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared import connector_store as store
from shared.crypto import KeyRing
from shared.db import transaction
from shared.errors import ConfigError, CryptoError, PayloadInvalid, ResendAuthError, ResendError
from shared.models import Connector, ConnectorStatus
from shared.resend_client import ResendClient

logger = logging.getLogger(__name__)

CHECKED_STATUSES = (ConnectorStatus.ACTIVE, ConnectorStatus.RATE_LIMITED, ConnectorStatus.ERROR)
ACTOR = "status-check"


@dataclass(frozen=True)
class CheckOutcome:
    """What one check found: ``ok``, the error if any, and the status after it."""

    connector_id: uuid.UUID
    ok: bool
    error: str | None
    status: str


def check_connectors(
    factory: sessionmaker[Session],
    client_for: Callable[[SecretStr], ResendClient],
    *,
    keyring: KeyRing | None,
    fallback_key: SecretStr | None,
    now: datetime,
) -> list[CheckOutcome]:
    """Check every connector in :data:`CHECKED_STATUSES`; no transaction is open during a call."""
    with factory() as session:
        connectors = list(session.scalars(select(Connector).where(Connector.status.in_(CHECKED_STATUSES))))
    outcomes = []
    for connector in connectors:
        key, problem = _key(connector, keyring, fallback_key)
        error, rejected = (problem, True) if key is None else _test(client_for(key))
        outcomes.append(record_check(factory, connector.id, error=error, rejected=rejected, now=now))
    return outcomes


def _key(
    connector: Connector, keyring: KeyRing | None, fallback: SecretStr | None
) -> tuple[SecretStr | None, str | None]:
    try:
        key = store.get_api_key(connector, keyring) or fallback
    except (CryptoError, ConfigError, PayloadInvalid) as exc:
        return None, f"API key unreadable: {exc}"
    return (key, None) if key is not None else (None, "no API key (connector credentials or RESEND_API_KEY)")


def _test(client: ResendClient) -> tuple[str | None, bool]:
    """(error, whether the key itself was rejected)."""
    try:
        client.check_key()
    except ResendAuthError as exc:
        return str(exc), True
    except ResendError as exc:
        return str(exc), False  # Resend or the network failed, not the key
    return None, False


def record_check(
    factory: sessionmaker[Session],
    connector_id: uuid.UUID,
    *,
    error: str | None,
    rejected: bool,
    now: datetime,
) -> CheckOutcome:
    """Store one check's result and move the status it implies."""
    with transaction(factory) as session:
        connector = store.get_connector(session, connector_id, for_update=True)
        store.record_check(session, connector, error=error, rejected=rejected, now=now, actor=ACTOR)
        if error:
            logger.warning("connector %s check failed: %s", connector_id, error)
        return CheckOutcome(connector_id, error is None, error, connector.status)
