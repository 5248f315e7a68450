"""The suppression list: addresses an organization must not send to, matched case-insensitively.

Addresses are stored lower-cased (a CHECK constraint holds it); an entry whose ``expires_at`` has
passed no longer suppresses. The worker only reads the list; webhook processing and the CLI write it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, null, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.errors import PayloadInvalid
from shared.models import SUPPRESSION_REASONS, Suppression

#: A recipient's advisory lock key within its organization, in SQL over ``org`` (uuid) and ``email``.
#: Senders hold it from their suppression check until the HTTP call is over; whoever suppresses (a
#: webhook, an operator) waits for it, so the suppression commits either before a send's check or
#: after its delivery, never unseen by a send in flight.
RECIPIENT_LOCK_KEY = "hashtextextended(CAST({org} AS text) || '/' || lower(btrim({email})), 0)"

_LOCK_RECIPIENT_FOR_SUPPRESSION = text(
    "SELECT pg_advisory_xact_lock(" + RECIPIENT_LOCK_KEY.format(org=":org", email=":email") + ")"
)


def lock_recipient_for_suppression(session: Session, organization_id: uuid.UUID, email: str) -> None:
    """Wait until no send to ``email`` is in flight; the lock lasts until the transaction ends."""
    session.execute(_LOCK_RECIPIENT_FOR_SUPPRESSION, {"org": organization_id, "email": email})


def normalize(email: str) -> str:
    """The stored form of an address: trimmed and lower-cased."""
    return email.strip().lower()


def find_suppressions(
    session: Session,
    organization_id: uuid.UUID,
    emails: Iterable[str],
    *,
    now: datetime | None = None,
) -> dict[str, Suppression]:
    """The active entries among ``emails``, keyed by the normalized address (one query)."""
    wanted = sorted({normalize(email) for email in emails if email and email.strip()})
    if not wanted:
        return {}
    moment = now or datetime.now(UTC)
    rows = session.scalars(
        select(Suppression).where(
            Suppression.organization_id == organization_id,
            Suppression.email.in_(wanted),
            or_(Suppression.expires_at.is_(None), Suppression.expires_at > moment),
        )
    )
    return {row.email: row for row in rows}


def is_suppressed(
    session: Session, organization_id: uuid.UUID, email: str, *, now: datetime | None = None
) -> bool:
    """Whether ``email`` is on the organization's active suppression list."""
    return bool(find_suppressions(session, organization_id, [email], now=now))


def suppress(
    session: Session,
    organization_id: uuid.UUID,
    email: str,
    reason: str,
    *,
    source: str | None = None,
    details: dict[str, Any] | None = None,
    expires_at: datetime | None = None,
) -> None:
    """Add (or refresh) the organization's entry for ``email``.

    A repeated call replaces reason, source, details and expiry: the latest evidence wins, and a
    permanent entry (``expires_at`` None) is never shortened by a later expiring one.
    """
    address = normalize(email)
    if not address:
        raise PayloadInvalid("email: must not be empty")
    if reason not in SUPPRESSION_REASONS:
        raise PayloadInvalid(f"reason: must be one of {', '.join(SUPPRESSION_REASONS)}")
    statement = insert(Suppression).values(
        organization_id=organization_id,
        email=address,
        reason=reason,
        source=source,
        details=details or {},
        expires_at=expires_at,
    )
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=[Suppression.organization_id, Suppression.email],
        set_={
            "reason": excluded.reason,
            "source": excluded.source,
            "details": excluded.details,
            # An entry without expiry stays without expiry.
            "expires_at": case((Suppression.expires_at.is_(None), null()), else_=excluded.expires_at),
        },
    )
    session.execute(statement)
