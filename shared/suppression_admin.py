"""Operator edits of the suppression list (CLI): add, remove, list, CSV import and export, audited.

CSV: ``email``, ``reason`` (default ``manual``), ``expires_at`` (ISO 8601), ``topic`` (blank: every
email); export adds ``source`` and ``created_at``. Import reads ``,`` or ``;`` and any header case, the
address column under an ESP's name too (:mod:`shared.csv_layout`). A formula-like cell is exported
behind a ``'``, which import removes. An import is checked whole first (docs/operations.md).
"""

from __future__ import annotations

import codecs
import csv
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import IO

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from shared import audit
from shared.address_hashing import address_hash
from shared.csv_layout import EMAIL_NAMES_HINT, read_layout
from shared.db import transaction
from shared.errors import ImportInterrupted, NotFound, PayloadInvalid
from shared.models import SUPPRESSION_REASONS, Suppression, SuppressionReason
from shared.suppression import (
    FORMULA_PREFIXES,
    MAX_RECIPIENT_LOCKS,
    TEXT_MARK,
    Entry,
    lock_recipient_for_suppression,
    normalize,
    suppress,
    suppress_many,
    suppression_address,
)
from shared.timestamps import parse_iso_time
from shared.unsubscribe.topics import EVERYTHING, TOPIC_PATTERN

CSV_COLUMNS = ("email", "reason", "expires_at", "topic", "source", "created_at")
#: Bad lines named in the message refusing an import; the rest are counted.
MAX_REPORTED_LINES = 20
#: Source of every entry an import writes.
IMPORT_SOURCE = "import"


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote: data ``lines`` read, distinct ``addresses``, of which ``new`` ones."""

    lines: int
    addresses: int
    new: int

    @property
    def updated(self) -> int:
        """Addresses that were on the list already (their entry refreshed)."""
        return self.addresses - self.new


def parse_entry(
    email: str,
    reason: str = SuppressionReason.MANUAL,
    expires_at: str | None = None,
    *,
    topic: str | None = None,
    where: str = "",
) -> Entry:
    """Validate one address, reason, expiry and topic (blank or None: every email), or raise
    :class:`PayloadInvalid` saying which."""
    try:
        address = suppression_address(email, operator_input=True)
    except PayloadInvalid as exc:
        raise PayloadInvalid(f"{where}email {email!r}: {exc}") from None
    if reason not in SUPPRESSION_REASONS:
        raise PayloadInvalid(f"{where}reason {reason!r}: must be one of {', '.join(SUPPRESSION_REASONS)}")
    return Entry(address, reason, _parse_time(expires_at, where=where), parse_topic(topic, where=where))


def parse_topic(topic: str | None, *, where: str = "") -> str:
    """The stored form of a topic given by an operator: '' (every email) when blank."""
    cleaned = (topic or "").strip()
    if cleaned and not re.fullmatch(TOPIC_PATTERN, cleaned):
        raise PayloadInvalid(
            f"{where}topic {cleaned!r}: must be 1-64 letters, digits, '_' or '-' (blank: every email)"
        )
    return cleaned or EVERYTHING


def add_entry(session: Session, organization_id: uuid.UUID, entry: Entry, *, actor: str) -> None:
    """Suppress one address for the organization, after any send to it now in flight."""
    lock_recipient_for_suppression(session, organization_id, entry.email)
    suppress(
        session,
        organization_id,
        entry.email,
        entry.reason,
        source="manual",
        expires_at=entry.expires_at,
        topic=entry.topic,
    )
    audit.record(
        session,
        action="suppression.add",
        actor=actor,
        organization_id=organization_id,
        target=f"suppression:{entry.email}",
        reason=entry.reason,
        details={"topic": entry.topic} if entry.topic else None,
    )


def remove_entry(
    session: Session, organization_id: uuid.UUID, email: str, *, actor: str, topic: str = EVERYTHING
) -> None:
    """Remove an address's entry for ``topic`` ('' : the entry for every email) from the
    organization's list, or raise :class:`NotFound`."""
    address = normalize(email)
    # An erased person's entry holds the address's hash: removing it by address is a new consent.
    removed = session.scalars(
        delete(Suppression)
        .where(
            Suppression.organization_id == organization_id,
            Suppression.email.in_((address, address_hash(organization_id, address))),
            Suppression.topic == topic,
        )
        .returning(Suppression.reason)
    ).first()
    if removed is None:
        scope = f" for topic {topic}" if topic else " for every email"
        raise NotFound(f"{address} is not on the suppression list{scope}")
    audit.record(
        session,
        action="suppression.remove",
        actor=actor,
        organization_id=organization_id,
        target=f"suppression:{address}",
        details={"was": removed, **({"topic": topic} if topic else {})},
    )


def list_entries(
    session: Session, organization_id: uuid.UUID, *, include_expired: bool = False
) -> list[Suppression]:
    """The organization's entries, newest first."""
    query = select(Suppression).where(Suppression.organization_id == organization_id)
    if not include_expired:
        query = query.where(or_(Suppression.expires_at.is_(None), Suppression.expires_at > datetime.now(UTC)))
    return list(session.scalars(query.order_by(Suppression.created_at.desc(), Suppression.email)))


def read_csv(data: bytes) -> list[Entry]:
    """Every data line of a suppression CSV (UTF-8), validated, in file order.

    Raises :class:`PayloadInvalid` naming every bad line (the first :data:`MAX_REPORTED_LINES`).
    """
    layout, rows = read_layout(_decoded(data))
    if layout.email_header is None:
        raise PayloadInvalid(
            f"CSV: no address column in the header {layout.describe()}: name it {EMAIL_NAMES_HINT}"
        )
    columns: dict[str, int] = {
        name: index
        for name in ("email", "reason", "expires_at", "topic")
        if (index := layout.index(name)) is not None
    }
    entries: list[Entry] = []
    problems: list[str] = []
    for line, row in rows:
        where = f"CSV line {line}: "
        if not row:
            continue
        if len(row) > len(layout.header):
            problems.append(f"{where}more fields than the header has")
            continue
        # The address rule itself takes a ' in front of a formula-like address (see _unescape).
        email = _cell(row, columns, "email")
        reason = _unescape(_cell(row, columns, "reason")) or SuppressionReason.MANUAL
        try:
            expires = _unescape(_cell(row, columns, "expires_at"))
            topic = _unescape(_cell(row, columns, "topic"))
            entries.append(parse_entry(email, reason, expires, topic=topic, where=where))
        except PayloadInvalid as exc:
            problems.append(str(exc))
    if problems:
        raise PayloadInvalid(_refusal(problems))
    return entries


def import_entries(
    session_factory: sessionmaker[Session],
    organization_id: uuid.UUID,
    entries: Sequence[Entry],
    *,
    actor: str,
) -> ImportReport:
    """Suppress every entry (an address given twice counts once, by :func:`suppress`'s rule).

    Each batch of up to :data:`MAX_RECIPIENT_LOCKS` addresses is one transaction that first waits
    for the sends to them now in flight (as :func:`add_entry` does for one), so an import of more
    addresses commits in several steps. The audit row, one per import, commits with the first.
    Raises :class:`ImportInterrupted` if a batch fails after others committed: importing the same
    entries again finishes the import (it writes the same entries).
    """
    unique = _fold_repeats(entries)
    batches = [
        unique[start : start + MAX_RECIPIENT_LOCKS] for start in range(0, len(unique), MAX_RECIPIENT_LOCKS)
    ]
    new = 0
    stored = 0
    for number, batch in enumerate(batches or [[]]):
        try:
            with transaction(session_factory) as session:
                if number == 0:
                    audit.record(
                        session,
                        action="suppression.import",
                        actor=actor,
                        organization_id=organization_id,
                        details={"lines": len(entries), "addresses": len(unique)},
                    )
                new += suppress_many(session, organization_id, batch, source=IMPORT_SOURCE)
        except SQLAlchemyError as exc:
            if not stored:
                raise
            raise ImportInterrupted(
                f"import stopped after {stored} of {len(unique)} addresses ({type(exc).__name__}); those"
                " are stored: import the same file again to finish",
                stored=stored,
            ) from exc
        stored += len(batch)
    return ImportReport(lines=len(entries), addresses=len(unique), new=new)


def write_csv(entries: Iterable[Suppression], stream: IO[str]) -> None:
    """Write entries as CSV with the columns :func:`read_csv` takes (plus source and created_at)."""
    writer = csv.writer(stream)
    writer.writerow(CSV_COLUMNS)
    for row in entries:
        expires = row.expires_at.isoformat() if row.expires_at else ""
        cells = (row.email, row.reason, expires, row.topic, row.source or "", row.created_at.isoformat())
        writer.writerow([escape_cell(value) for value in cells])


def escape_cell(value: str) -> str:
    """``value`` with a ``'`` in front if a spreadsheet would run it as a formula."""
    return TEXT_MARK + value if value.startswith(FORMULA_PREFIXES) else value


def _cell(row: list[str], columns: dict[str, int], name: str) -> str:
    index = columns.get(name)
    return row[index] if index is not None and index < len(row) else ""


def _unescape(value: str) -> str:
    """A cell as it was before :func:`escape_cell` (a ``'`` in front of anything else stays)."""
    marked = value.startswith(TEXT_MARK) and value[1:2] in FORMULA_PREFIXES
    return value[1:] if marked else value


def _decoded(data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PayloadInvalid(
            f"CSV line {line}: byte 0x{data[exc.start]:02x} is not UTF-8; save the file as UTF-8"
            " (in a spreadsheet: CSV UTF-8) and import it again"
        ) from None


def _refusal(problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{problems[0]}; nothing was imported"
    shown = problems[:MAX_REPORTED_LINES]
    if len(problems) > len(shown):
        shown.append(f"... and {len(problems) - len(shown)} more bad line(s)")
    shown.append(f"{len(problems)} bad line(s): nothing was imported")
    return "\n".join(shown)


def _fold_repeats(entries: Iterable[Entry]) -> list[Entry]:
    """One entry per address and topic, as if each were suppressed in turn: the last line's reason and
    expiry win, but an entry once permanent stays permanent."""
    folded: dict[tuple[str, str], Entry] = {}
    for entry in entries:
        earlier = folded.get((entry.email, entry.topic))
        permanent = earlier is not None and earlier.expires_at is None
        folded[(entry.email, entry.topic)] = replace(entry, expires_at=None) if permanent else entry
    return list(folded.values())


def _parse_time(value: str | None, *, where: str) -> datetime | None:
    if not value:
        return None
    try:
        return parse_iso_time(value)
    except ValueError as exc:
        raise PayloadInvalid(f"{where}expires_at {value!r}: {exc}") from None
