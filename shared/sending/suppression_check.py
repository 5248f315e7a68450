"""Which recipients of a unit are suppressed, with the reason and date given back to the caller."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from shared.suppression import active_entries, normalize, stopping_entry


def suppressed_reasons(
    session: Session,
    organization_id: uuid.UUID,
    recipients: Iterable[tuple[str, str | None]],
    *,
    now: datetime | None = None,
) -> dict[tuple[str, str | None], str]:
    """``{(lower-cased address, topic): reason}`` for each recipient suppressed for everything or for
    its email's topic (``recipients``: address and topic pairs; one query)."""
    pairs = [(normalize(email), topic) for email, topic in recipients]
    found = active_entries(session, organization_id, [email for email, _ in pairs], now=now)
    reasons: dict[tuple[str, str | None], str] = {}
    for email, topic in pairs:
        entry = stopping_entry(found.get(email, []), topic)
        if entry is not None:
            reasons[(email, topic)] = describe(entry.reason, entry.created_at)
    return reasons


def describe(reason: str, since: datetime) -> str:
    """``suppressed: hard_bounce since 2026-03-01``."""
    return f"suppressed: {reason} since {since.date().isoformat()}"
