"""Which recipients of a unit are suppressed, with the reason and date given back to the caller."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from shared.suppression import find_suppressions


def suppressed_reasons(
    session: Session, organization_id: uuid.UUID, recipients: Iterable[str], *, now: datetime | None = None
) -> dict[str, str]:
    """``{lower-cased address: reason}`` for each suppressed recipient (one query)."""
    found = find_suppressions(session, organization_id, recipients, now=now)
    return {email: describe(entry.reason, entry.created_at) for email, entry in found.items()}


def describe(reason: str, since: datetime) -> str:
    """``suppressed: hard_bounce since 2026-03-01``."""
    return f"suppressed: {reason} since {since.date().isoformat()}"
