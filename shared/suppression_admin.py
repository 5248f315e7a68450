"""Operator edits of the suppression list (CLI): add, remove, list, CSV import and export, audited.

CSV columns: ``email`` (required), ``reason`` (default ``manual``), ``expires_at`` (ISO 8601, optional).
An import is all or nothing: every row is checked before any is written.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from shared import audit
from shared.addresses import check_address
from shared.errors import NotFound, PayloadInvalid
from shared.models import SUPPRESSION_REASONS, Suppression
from shared.suppression import lock_recipient_for_suppression, normalize, suppress

CSV_COLUMNS = ("email", "reason", "expires_at", "source", "created_at")


@dataclass(frozen=True)
class Entry:
    """One row to suppress, validated."""

    email: str
    reason: str
    expires_at: datetime | None


def parse_entry(
    email: str, reason: str = "manual", expires_at: str | None = None, *, where: str = ""
) -> Entry:
    """Validate one address, reason and expiry, or raise :class:`PayloadInvalid` saying which."""
    address = normalize(email)
    try:
        check_address(address)
    except ValueError as exc:
        raise PayloadInvalid(f"{where}email {email!r}: {exc}") from None
    if "<" in address:
        raise PayloadInvalid(f"{where}email {email!r}: give the bare address, without a display name")
    if reason not in SUPPRESSION_REASONS:
        raise PayloadInvalid(f"{where}reason {reason!r}: must be one of {', '.join(SUPPRESSION_REASONS)}")
    return Entry(address, reason, _parse_time(expires_at, where=where))


def add_entry(session: Session, organization_id: uuid.UUID, entry: Entry, *, actor: str) -> None:
    """Suppress one address for the organization, after any send to it now in flight."""
    lock_recipient_for_suppression(session, organization_id, entry.email)
    suppress(
        session, organization_id, entry.email, entry.reason, source="manual", expires_at=entry.expires_at
    )
    audit.record(
        session,
        action="suppression.add",
        actor=actor,
        organization_id=organization_id,
        target=f"suppression:{entry.email}",
        reason=entry.reason,
    )


def remove_entry(session: Session, organization_id: uuid.UUID, email: str, *, actor: str) -> None:
    """Remove an address from the organization's list, or raise :class:`NotFound`."""
    address = normalize(email)
    removed = session.execute(
        delete(Suppression)
        .where(Suppression.organization_id == organization_id, Suppression.email == address)
        .returning(Suppression.reason)
    ).scalar_one_or_none()
    if removed is None:
        raise NotFound(f"{address} is not on the suppression list")
    audit.record(
        session,
        action="suppression.remove",
        actor=actor,
        organization_id=organization_id,
        target=f"suppression:{address}",
        details={"was": removed},
    )


def list_entries(
    session: Session, organization_id: uuid.UUID, *, include_expired: bool = False
) -> list[Suppression]:
    """The organization's entries, newest first."""
    query = select(Suppression).where(Suppression.organization_id == organization_id)
    if not include_expired:
        query = query.where(or_(Suppression.expires_at.is_(None), Suppression.expires_at > datetime.now(UTC)))
    return list(session.scalars(query.order_by(Suppression.created_at.desc(), Suppression.email)))


def read_csv(stream: IO[str]) -> list[Entry]:
    """Every row of a suppression CSV, validated; the first bad row raises, naming its line."""
    reader = csv.DictReader(stream)
    if reader.fieldnames is None or "email" not in reader.fieldnames:
        raise PayloadInvalid("CSV: the header must include an 'email' column")
    entries = []
    for row in reader:
        where = f"CSV line {reader.line_num}: "
        if None in row:
            raise PayloadInvalid(f"{where}more fields than the header has")
        entries.append(
            parse_entry(
                row.get("email") or "", row.get("reason") or "manual", row.get("expires_at"), where=where
            )
        )
    return entries


def import_entries(
    session: Session, organization_id: uuid.UUID, entries: Iterable[Entry], *, actor: str
) -> int:
    """Suppress every entry (one audit row for the import); return how many.

    Unlike :func:`add_entry` this takes no recipient locks: one per row would fill PostgreSQL's lock
    table on a large import. A send already past its check when the import commits may still go out.
    """
    count = 0
    for entry in entries:
        suppress(
            session, organization_id, entry.email, entry.reason, source="import", expires_at=entry.expires_at
        )
        count += 1
    audit.record(
        session,
        action="suppression.import",
        actor=actor,
        organization_id=organization_id,
        details={"rows": count},
    )
    return count


def write_csv(entries: Iterable[Suppression], stream: IO[str]) -> None:
    """Write entries as CSV with the columns :func:`read_csv` takes (plus source and created_at)."""
    writer = csv.writer(stream)
    writer.writerow(CSV_COLUMNS)
    for row in entries:
        expires = row.expires_at.isoformat() if row.expires_at else ""
        writer.writerow([row.email, row.reason, expires, row.source or "", row.created_at.isoformat()])


def _parse_time(value: str | None, *, where: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadInvalid(f"{where}expires_at {value!r}: must be an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
