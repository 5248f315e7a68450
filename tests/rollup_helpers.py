"""Ledger rollup rows written directly, for tests of what reads them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date

from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import LedgerRollup, MessageStatus
from shared.settings import load_settings


def add_rollups(
    database_url: str,
    organization_id: str,
    connector_id: str,
    days: Mapping[date, Mapping[MessageStatus, int]],
) -> None:
    """The rollups of ``days`` (emails by status each) for one connector's sends outside a task."""
    engine = make_engine(load_settings(database_url=database_url))
    with transaction(make_sessionmaker(engine)) as session:
        for day, by_status in days.items():
            for status, emails in by_status.items():
                session.add(
                    LedgerRollup(
                        day=day,
                        organization_id=uuid.UUID(organization_id),
                        connector_id=uuid.UUID(connector_id),
                        task_id=None,
                        status=status,
                        emails=emails,
                    )
                )
    engine.dispose()
