"""Where a connector writes what happened: usage per hour, failures, status checks.

:class:`DatabaseRecorder` writes to PostgreSQL through :mod:`shared.connector_store`, each call in its
own short transaction. A recording failure is logged and swallowed: it must never turn an email that
was sent into one reported as failed.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from shared import connector_store as store
from shared.db import transaction
from shared.errors import PilotError
from shared.models import ConnectorStatus

logger = logging.getLogger(__name__)

#: Actor written in the audit log for status changes the connector makes itself.
ACTOR = "connector"


class ConnectorRecorder(Protocol):
    """Receives a connector's usage and failures."""

    def record_usage(self, connector_id: uuid.UUID, *, emails: int, requests: int) -> None: ...

    def record_error(self, connector_id: uuid.UUID, error: str, *, unusable: bool) -> None: ...

    def record_check(self, connector_id: uuid.UUID, *, error: str | None) -> None: ...


class NullRecorder:
    """Records nothing (a connector built without a database)."""

    def record_usage(self, connector_id: uuid.UUID, *, emails: int, requests: int) -> None:
        """Nothing."""

    def record_error(self, connector_id: uuid.UUID, error: str, *, unusable: bool) -> None:
        """Nothing."""

    def record_check(self, connector_id: uuid.UUID, *, error: str | None) -> None:
        """Nothing."""


class DatabaseRecorder:
    """Writes to ``connector_usage`` and the ``connectors`` row (with an audit row on status changes)."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._factory = session_factory

    def __repr__(self) -> str:
        return "DatabaseRecorder()"

    def record_usage(self, connector_id: uuid.UUID, *, emails: int, requests: int) -> None:
        """Add to this hour's usage row."""
        try:
            with transaction(self._factory) as session:
                store.record_usage(session, connector_id, emails=emails, requests=requests)
        except (SQLAlchemyError, PilotError) as exc:
            logger.warning("connector %s: usage not recorded (%s)", connector_id, type(exc).__name__)

    def record_error(self, connector_id: uuid.UUID, error: str, *, unusable: bool) -> None:
        """Set ``last_error``; an unusable key also sets status ``error`` until a check passes."""
        try:
            with transaction(self._factory) as session:
                connector = store.get_connector(session, connector_id, for_update=True)
                store.set_last_error(connector, error)
                if unusable:
                    store.set_status(
                        session, connector, ConnectorStatus.ERROR, actor=ACTOR, reason=error[:200]
                    )
        except (SQLAlchemyError, PilotError) as exc:
            logger.warning("connector %s: error not recorded (%s)", connector_id, type(exc).__name__)

    def record_check(self, connector_id: uuid.UUID, *, error: str | None) -> None:
        """Record a check as beat's status check does (a passing one brings ``error`` back to
        ``active``); a rejected key was recorded already by :meth:`record_error`.

        The check itself is audited by whoever asked for it (the CLI), under their own actor.
        """
        try:
            with transaction(self._factory) as session:
                connector = store.get_connector(session, connector_id, for_update=True)
                store.record_check(
                    session, connector, error=error, rejected=False, now=datetime.now(UTC), actor=ACTOR
                )
        except (SQLAlchemyError, PilotError) as exc:
            logger.warning("connector %s: check not recorded (%s)", connector_id, type(exc).__name__)
