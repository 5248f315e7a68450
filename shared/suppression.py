"""The suppression list: addresses an organization must not send to, matched case-insensitively.

Addresses are stored lower-cased (a CHECK constraint holds it), or hashed for an erased person
(:mod:`shared.address_hashing`): every check matches both forms. An entry whose ``expires_at`` has
passed no longer suppresses. An entry stops one topic, or every email (topic ''): see
:mod:`shared.unsubscribe.topics`. The worker only reads the list; webhook processing, the
unsubscribe endpoints and the CLI write it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, TEXT, TIMESTAMP, insert
from sqlalchemy.dialects.postgresql.dml import Insert
from sqlalchemy.orm import Session, aliased

from shared.address_hashing import address_hash
from shared.addresses import check_bare_address
from shared.errors import PayloadInvalid
from shared.models import SUPPRESSION_REASONS, Suppression
from shared.unsubscribe.topics import EVERYTHING, stops

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


#: First characters that make a spreadsheet run a cell as a formula (OWASP CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
#: Before a formula-like cell, it makes a spreadsheet show the cell as text; export writes it.
TEXT_MARK = "'"
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def suppression_address(value: str, *, operator_input: bool = False) -> str:
    """``value`` as the list stores it (trimmed, lower-cased), or :class:`PayloadInvalid` saying why.

    Every entry must be non-empty and free of control characters. An address the send path sent to
    (a webhook's recipient) is stored with no more checks, so no bounce or complaint is lost to a
    stricter rule. Operator input (``pilot suppression add`` and ``import``) must also be one bare
    mailbox by email-validator's syntax rules, and must not start like a spreadsheet formula unless
    written as text, with a ``'`` in front (which is removed), as the export writes it.
    """
    control = _CONTROL.search(value)
    if control:
        raise PayloadInvalid(f"contains the control character \\x{ord(control.group()):02x}")
    address = value.strip()
    if not address:
        raise PayloadInvalid("must not be empty")
    if operator_input:
        address = _checked_operator_address(address)
    return address.lower()


def _checked_operator_address(address: str) -> str:
    marked_as_text = address.startswith(TEXT_MARK) and address[1:2] in FORMULA_PREFIXES
    if marked_as_text:
        address = address[1:]
    elif address.startswith(FORMULA_PREFIXES):
        raise PayloadInvalid(
            f"starts with {address[0]!r}, which spreadsheets run as a formula: refused even if it is a"
            f" valid address (write it as {TEXT_MARK}{address} if it really is the address)"
        )
    if "," in address or ";" in address or (address.count("@") > 1 and re.search(r"\s", address)):
        raise PayloadInvalid("holds more than one address: give one address per entry")
    if "<" in address or ">" in address:
        raise PayloadInvalid("give the bare address, without a display name")
    if "(" in address or ")" in address:
        raise PayloadInvalid("comments in parentheses are not allowed")
    try:
        return check_bare_address(address)
    except ValueError as exc:
        raise PayloadInvalid(str(exc)) from None


def active_entries(
    session: Session, organization_id: uuid.UUID, emails: Iterable[str], *, now: datetime | None = None
) -> dict[str, list[Suppression]]:
    """The active entries of ``emails`` by normalized address, everything's entry first (one query);
    an address's hashed entries count as its own.

    Each address is looked up on its own (a lateral join: two keys of the list's unique index), so the
    cost follows the number of addresses, never the size of the organization's list.
    """
    wanted = sorted({normalize(email) for email in emails if email and email.strip()})
    if not wanted:
        return {}
    moment = now or datetime.now(UTC)
    given = (
        func.unnest(
            bindparam("emails", wanted, type_=ARRAY(TEXT)),
            bindparam(
                "hashes", [address_hash(organization_id, email) for email in wanted], type_=ARRAY(TEXT)
            ),
        )
        .table_valued("email", "hashed")
        .render_derived(name="given")
    )
    entry = aliased(
        Suppression,
        select(Suppression)
        .where(
            Suppression.organization_id == organization_id,
            Suppression.email.in_([given.c.email, given.c.hashed]),
            or_(Suppression.expires_at.is_(None), Suppression.expires_at > moment),
        )
        # OFFSET keeps the planner from merging the subquery into a join over the whole list.
        .offset(0)
        .lateral("entry"),
    )
    rows = session.execute(
        select(given.c.email, entry)
        .select_from(given)
        .join(entry, true())
        .order_by(given.c.email, entry.topic, entry.email)
    )
    found: dict[str, list[Suppression]] = {}
    for address, row in rows:
        found.setdefault(address, []).append(row)
    return found


def stopping_entry(entries: Iterable[Suppression], topic: str | None) -> Suppression | None:
    """The first of ``entries`` that stops an email of ``topic`` (None: the email has none)."""
    return next((entry for entry in entries if stops(entry.topic, topic)), None)


def find_suppressions(
    session: Session,
    organization_id: uuid.UUID,
    emails: Iterable[str],
    *,
    now: datetime | None = None,
) -> dict[str, Suppression]:
    """The active entries for everything among ``emails``, keyed by the normalized address (one
    query): what stops an email without a topic."""
    found = active_entries(session, organization_id, emails, now=now)
    return {
        email: entry
        for email, entries in found.items()
        if (entry := stopping_entry(entries, None)) is not None
    }


def suppress(
    session: Session,
    organization_id: uuid.UUID,
    email: str,
    reason: str,
    *,
    source: str | None = None,
    details: dict[str, Any] | None = None,
    expires_at: datetime | None = None,
    topic: str = EVERYTHING,
) -> None:
    """Add (or refresh) the organization's entry for ``email`` and ``topic`` ('' : every email).

    ``email`` must pass :func:`suppression_address`. A repeated call replaces reason, source,
    details and expiry: the latest evidence wins, and a permanent entry (``expires_at`` None) is
    never shortened by a later expiring one.
    """
    try:
        address = suppression_address(email)
    except PayloadInvalid as exc:
        raise PayloadInvalid(f"email: {exc}") from None
    _check_reason(reason)
    statement = insert(Suppression).values(
        organization_id=organization_id,
        email=address,
        topic=topic,
        reason=reason,
        source=source,
        details=details or {},
        expires_at=expires_at,
    )
    session.execute(_latest_evidence_wins(statement))


@dataclass(frozen=True)
class Entry:
    """One address to suppress, validated: its stored form, reason, expiry and topic ('' : every
    email)."""

    email: str
    reason: str
    expires_at: datetime | None
    topic: str = EVERYTHING


#: Recipient locks one bulk transaction holds at most. PostgreSQL's lock table, shared by every
#: session, holds about max_locks_per_transaction x max_connections locks (6,400 by default), and
#: each send in flight holds two: more here would make senders fail with "out of shared memory".
MAX_RECIPIENT_LOCKS = 1000

_LOCK_RECIPIENTS_FOR_SUPPRESSION = text(
    "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT "
    + RECIPIENT_LOCK_KEY.format(org="CAST(:org AS uuid)", email="e")
    + " AS k FROM unnest(:emails) AS e) AS keys ORDER BY k"
).bindparams(bindparam("emails", type_=ARRAY(TEXT)))


def suppress_many(
    session: Session, organization_id: uuid.UUID, entries: Sequence[Entry], *, source: str
) -> int:
    """Add (or refresh) the organization's entries for ``entries``, by :func:`suppress`'s rule, in
    two statements; returns how many addresses were not on the list yet.

    First waits until no send to any of the addresses is in flight, holding their recipient locks
    (taken in key order, so two bulk writers cannot deadlock) until the transaction ends, as
    :func:`suppress`'s callers do. Each address must appear once; at most
    :data:`MAX_RECIPIENT_LOCKS` of them.
    """
    if not entries:
        return 0
    if len(entries) > MAX_RECIPIENT_LOCKS:
        raise ValueError(f"suppress_many takes at most {MAX_RECIPIENT_LOCKS} entries, got {len(entries)}")
    emails = []
    for entry in entries:
        _check_reason(entry.reason)
        try:
            emails.append(suppression_address(entry.email))
        except PayloadInvalid as exc:
            raise PayloadInvalid(f"email {entry.email!r}: {exc}") from None
    session.execute(_LOCK_RECIPIENTS_FOR_SUPPRESSION, {"org": organization_id, "emails": emails})
    rows = (
        func.unnest(
            bindparam("emails", emails, type_=ARRAY(TEXT)),
            bindparam("reasons", [entry.reason for entry in entries], type_=ARRAY(TEXT)),
            bindparam(
                "expiries", [entry.expires_at for entry in entries], type_=ARRAY(TIMESTAMP(timezone=True))
            ),
            bindparam("topics", [entry.topic for entry in entries], type_=ARRAY(TEXT)),
        )
        .table_valued("email", "reason", "expires_at", "topic")
        .render_derived(name="given")
    )
    columns = ["organization_id", "email", "topic", "reason", "source", "details", "expires_at"]
    values = select(
        literal(organization_id),
        rows.c.email,
        rows.c.topic,
        rows.c.reason,
        literal(source),
        literal_column("'{}'::jsonb"),
        rows.c.expires_at,
    )
    statement = _latest_evidence_wins(insert(Suppression).from_select(columns, values))
    # xmax is 0 on a row version this statement inserted, the updater's id on one it updated.
    was_new = literal_column("xmax = 0", type_=Boolean)
    return sum(1 for inserted in session.scalars(statement.returning(was_new)) if inserted)


def _latest_evidence_wins(statement: Insert) -> Insert:
    """On an existing entry: reason, source, details and expiry are replaced, but a permanent entry
    (``expires_at`` None) is never shortened by a later expiring one."""
    excluded = statement.excluded
    expiry: ColumnElement[Any] = case((Suppression.expires_at.is_(None), null()), else_=excluded.expires_at)
    return statement.on_conflict_do_update(
        index_elements=[Suppression.organization_id, Suppression.email, Suppression.topic],
        set_={
            "reason": excluded.reason,
            "source": excluded.source,
            "details": excluded.details,
            "expires_at": expiry,
        },
    )


def _check_reason(reason: str) -> None:
    if reason not in SUPPRESSION_REASONS:
        raise PayloadInvalid(f"reason: must be one of {', '.join(SUPPRESSION_REASONS)}")
