"""Erasure of one person from one organization (``pilot erase``): every row of theirs is removed or
anonymised, and their address is kept only as a hash, in a suppression entry that stops every email.

Other organizations' rows for the same address are never changed. What happens to each table and
why: docs/architecture.md, "Erasure".
"""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy.orm import Session

from shared import audit
from shared.address_hashing import address_hash
from shared.connector_store import get_organization
from shared.db import raw_connection
from shared.errors import ErasureBlocked, PayloadInvalid
from shared.models import CANCELLABLE_STATUSES, MessageStatus, SuppressionReason
from shared.sending.attachments import RETENTION_GRACE
from shared.sending.cancellation import MAX_ROWS, Selection, cancel
from shared.suppression import lock_recipient_for_suppression, suppression_address
from shared.unsubscribe.topics import EVERYTHING

#: ``suppression_list.source`` of an erased person's entry, and the actor of the cancellations.
SOURCE = "erasure"
#: ASCII punctuation, escaped in the pattern that finds an address in stored text (any case).
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


@dataclass(frozen=True)
class ErasureReport:
    """What one erasure changed, per table; ``address_hash`` is what stands for the address now."""

    address_hash: str
    messages: int
    request_bodies: int
    cancelled: int
    metrics: int
    webhook_events: int
    outcome_events: int
    suppression_entries: int
    dead_letters: int
    attachments: int

    @property
    def found(self) -> bool:
        """Whether the organization held anything of the person (the kept entry aside)."""
        return any(value for name, value in asdict(self).items() if name != "address_hash")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**asdict(self), "found": self.found}


def erase(
    session: Session, organization_id: uuid.UUID, email: str, *, actor: str, now: datetime
) -> ErasureReport:
    """Erase ``email`` (any case) from the organization in ``session``'s transaction; audited by hash.

    Waits for any send to the address in flight; raises :class:`ErasureBlocked` if some of its emails
    still await their outcome, :class:`PayloadInvalid` for a malformed address.
    """
    try:
        address = suppression_address(email, operator_input=True)
    except PayloadInvalid as exc:
        raise PayloadInvalid(f"email: {exc}") from None
    get_organization(session, organization_id)
    hashed = address_hash(organization_id, address)
    lock_recipient_for_suppression(session, organization_id, address)
    conn = raw_connection(session)
    params: dict[str, Any] = {
        "org": organization_id,
        "address": address,
        "hash": hashed,
        "pattern": _PUNCTUATION.sub(r"\\\1", address),
    }
    rows = conn.execute(_MESSAGES, params).fetchall()
    in_flight = sum(1 for _, status, _, _ in rows if status == MessageStatus.SENDING)
    if in_flight:
        raise ErasureBlocked(
            f"{in_flight} email(s) to this address are being sent and their outcome is not known yet:"
            " nothing was erased; run the erasure again in a few minutes",
            in_flight=in_flight,
        )
    ids = [row_id for row_id, _, _, _ in rows]
    params |= {
        "ids": ids,
        "id_texts": [str(row_id) for row_id in ids],
        "resend_ids": [resend_id for _, _, resend_id, _ in rows if resend_id],
        "digests": sorted({digest for *_, digests in rows for digest in digests or ()}),
    }
    cancelled = _cancel_open(conn, organization_id, ids)
    metric_rows = conn.execute(_METRICS, params).fetchall()
    params["events"] = [event for (event,) in metric_rows if event is not None]
    report = ErasureReport(
        address_hash=hashed,
        messages=conn.execute(_MESSAGES_ANONYMISED, params).rowcount,
        request_bodies=conn.execute(_REQUEST_BODIES, params).rowcount,
        cancelled=cancelled,
        metrics=len(metric_rows),
        webhook_events=conn.execute(_WEBHOOK_EVENTS, params).rowcount,
        outcome_events=conn.execute(_OUTCOME_EVENTS_DROPPED, params).rowcount
        + conn.execute(_OUTCOME_REASONS, params).rowcount,
        suppression_entries=conn.execute(_PLAIN_ENTRIES, params).rowcount,
        dead_letters=conn.execute(_DEAD_LETTERS, params).rowcount,
        attachments=_remove_attachments(conn, params, now),
    )
    conn.execute(_HASHED_ENTRY, params | {"reason": SuppressionReason.ERASED.value, "source": SOURCE})
    counts = {name: value for name, value in report.as_dict().items() if name != "address_hash"}
    audit.record(
        session,
        action="address.erase",
        actor=actor,
        organization_id=organization_id,
        target=f"address:{hashed}",
        details=counts,
    )
    return report


def _cancel_open(conn: psycopg.Connection[Any], organization_id: uuid.UUID, ids: list[uuid.UUID]) -> int:
    """Cancel the person's emails that have not left (so nothing stored for them is needed again)."""
    cancelled = 0
    for start in range(0, len(ids), MAX_ROWS):
        chunk = tuple(ids[start : start + MAX_ROWS])
        outcome = cancel(conn, Selection(message_ids=chunk, organization_id=organization_id), actor=SOURCE)
        cancelled += outcome.counts().get("cancelled", 0)
    return cancelled


def _remove_attachments(conn: psycopg.Connection[Any], params: dict[str, Any], now: datetime) -> int:
    """The person's attachment bytes no waiting row names (bytes another send named lately stay for
    the hourly removal, as a send may be about to name them)."""
    if not params["digests"]:
        return 0
    cutoff = now - RETENTION_GRACE
    return conn.execute(_ATTACHMENTS, params | {"cutoff": cutoff, "needed": _NEEDED}).rowcount


#: Statuses of the rows whose attachment bytes are still needed (as the hourly removal counts them).
_NEEDED = sorted(str(status) for status in (*CANCELLABLE_STATUSES, MessageStatus.SENDING))

# The person's ledger rows in the organization (by the recipient index), locked for the erasure.
_MESSAGES = """
SELECT id, status, resend_email_id, attachment_digests FROM email_messages
WHERE organization_id = %(org)s AND lower(recipient) = %(address)s
ORDER BY id
FOR UPDATE
"""

# Rows are kept (task totals, reputation rates and idempotency stay right) without the person: the
# recipient is its hash, the subject is emptied, other text (the caller's tags too) loses the address.
_MESSAGES_ANONYMISED = """
UPDATE email_messages SET
    recipient = %(hash)s,
    subject = '',
    tags = CAST(regexp_replace(CAST(tags AS text), %(pattern)s, %(hash)s, 'gi') AS jsonb),
    attachment_digests = NULL,
    idempotency_key = regexp_replace(idempotency_key, %(pattern)s, %(hash)s, 'gi'),
    attempt_key = regexp_replace(attempt_key, %(pattern)s, %(hash)s, 'gi'),
    last_error = regexp_replace(last_error, %(pattern)s, %(hash)s, 'gi'),
    updated_at = now()
WHERE id = ANY(%(ids)s)
"""

# The stored request bodies (``to``, display name, content): none is needed again, as every row has
# left or was cancelled.
_REQUEST_BODIES = """
DELETE FROM email_requests WHERE message_id = ANY(%(ids)s)
"""

# Their delivery events (an unsubscribe whose ledger row was gone names it in its metadata only).
_METRICS = """
UPDATE email_metrics SET
    recipient = CASE WHEN recipient IS NULL THEN NULL ELSE %(hash)s END,
    subject = NULL,
    metadata = CAST(regexp_replace(CAST(metadata AS text), %(pattern)s, %(hash)s, 'gi') AS jsonb)
WHERE message_id = ANY(%(ids)s)
    OR (message_id IS NULL AND metadata->>'message_id' = ANY(%(id_texts)s))
RETURNING webhook_event_id
"""

# The raw webhook bodies: those applied (by their metrics) and those still waiting for the person's
# emails (the unprocessed ones, a partial index). Kept without the address and subject, not deleted:
# the stored svix id is what makes a redelivered event a duplicate.
_WEBHOOK_EVENTS = """
UPDATE webhook_events SET payload = jsonb_set(
    CAST(regexp_replace(CAST(payload AS text), %(pattern)s, %(hash)s, 'gi') AS jsonb),
    '{data,subject}', '""', false)
WHERE id = ANY(%(events)s)
    OR (processed_at IS NULL AND payload->'data'->>'email_id' = ANY(%(resend_ids)s))
"""

# Outcome events not published yet would tell the caller about the person again: dropped. Published
# ones keep their kind and time, without the address.
_OUTCOME_EVENTS_DROPPED = """
DELETE FROM outcome_events WHERE message_id = ANY(%(ids)s) AND published_at IS NULL
"""
_OUTCOME_REASONS = """
UPDATE outcome_events SET reason = regexp_replace(reason, %(pattern)s, %(hash)s, 'gi')
WHERE message_id = ANY(%(ids)s) AND reason ~* %(pattern)s
"""

# Every entry of the address (each topic, unsubscribes included) gives way to one hashed entry for
# everything.
_PLAIN_ENTRIES = "DELETE FROM suppression_list WHERE organization_id = %(org)s AND email = %(address)s"
_HASHED_ENTRY = f"""
INSERT INTO suppression_list (organization_id, email, topic, reason, source)
VALUES (%(org)s, %(hash)s, '{EVERYTHING}', %(reason)s, %(source)s)
ON CONFLICT (organization_id, email, topic) DO UPDATE SET
    reason = excluded.reason, source = excluded.source, details = '{{}}'::jsonb, expires_at = NULL
"""

# Refused broker messages naming the address and this organization (its id or one of its
# connectors'): a dead letter of another organization is never touched.
_DEAD_LETTERS = """
DELETE FROM dead_letters d
WHERE (encode(d.body, 'escape') ~* %(pattern)s OR CAST(d.headers AS text) ~* %(pattern)s)
    AND EXISTS (
        SELECT FROM (SELECT CAST(%(org)s AS uuid) AS id UNION ALL
                     SELECT id FROM connectors WHERE organization_id = %(org)s) AS owner
        WHERE strpos(encode(d.body, 'escape') || COALESCE(CAST(d.headers AS text), ''),
                     CAST(owner.id AS text)) > 0
    )
"""

_ATTACHMENTS = """
DELETE FROM email_attachments a
WHERE a.sha256 = ANY(%(digests)s) AND a.last_used_at < %(cutoff)s
    AND NOT EXISTS (
        SELECT FROM email_messages m
        WHERE m.status = ANY(%(needed)s) AND m.attachment_digests @> ARRAY[a.sha256]
    )
"""
