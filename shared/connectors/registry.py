"""Connector types by name. A new type is one module subclassing ``BaseConnector`` plus one line here."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session, sessionmaker

from shared.connectors import factory
from shared.connectors.base import BaseConnector, UsageLimiter
from shared.connectors.resend import ResendConnector
from shared.resend_http import ResendHTTP
from shared.settings import Settings

#: ``connectors.type`` -> the class that serves it.
CONNECTOR_TYPES: dict[str, type[BaseConnector]] = {
    ResendConnector.type_name: ResendConnector,
}


def create_connector(
    connector_id: uuid.UUID | str,
    *,
    session_factory: sessionmaker[Session] | None = None,
    settings: Settings | None = None,
    http: ResendHTTP | None = None,
    limiter: UsageLimiter | None = None,
    include_inactive: bool = False,
) -> BaseConnector:
    """Load any registered connector type by id (see :func:`factory.load_connector` for the errors)."""
    return factory.load_connector(
        connector_id,
        types=CONNECTOR_TYPES,
        session_factory=session_factory,
        settings=settings,
        http=http,
        limiter=limiter,
        include_inactive=include_inactive,
    )
