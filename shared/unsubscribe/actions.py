"""Record an unsubscribe, or undo one: the suppression entry, its metric row, the task's figures.

:func:`unsubscribe` is idempotent: the same link used again changes nothing and adds no row. It
never weakens a stronger entry (a bounce or a complaint stays what it is); an expired or expiring
soft-bounce entry becomes a permanent unsubscribe. :func:`resubscribe` removes only an entry an
unsubscribe link made, never a bounce, a complaint or an operator's entry. A link of an erased
person's email changes nothing: they are suppressed for everything already, by hash.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.address_hashing import address_hash
from shared.counters import delivery
from shared.models import Organization, Suppression, SuppressionReason
from shared.resend_events import EventType
from shared.suppression import lock_recipient_for_suppression
from shared.unsubscribe.tokens import ResubscribeToken, UnsubscribeToken
from shared.unsubscribe.topics import EVERYTHING, Scope, entry_topic


class UnsubscribeSource(StrEnum):
    """Where an unsubscribe came from (the ``source`` of its suppression entry, a metric label)."""

    ONE_CLICK = "one_click"  # the RFC 8058 POST a mailbox provider sends
    PAGE = "unsubscribe_page"  # a button of the unsubscribe page


SOURCES = tuple(source.value for source in UnsubscribeSource)


@dataclass(frozen=True)
class Unsubscribed:
    """What an unsubscribe recorded: the topic of the entry ('' : everything) and whether it is new."""

    topic: str
    new: bool


def organization_name(session: Session, organization_id: uuid.UUID) -> str | None:
    """The organization's name, or None when it no longer exists."""
    return session.scalar(select(Organization.name).where(Organization.id == organization_id))


def unsubscribe(
    session: Session, token: UnsubscribeToken, scope: Scope, *, source: UnsubscribeSource, now: datetime
) -> Unsubscribed:
    """Suppress the token's recipient for ``scope`` (the email's topic, or everything; an email
    without a topic leaves everything), in ``session``'s transaction, after any send to the address
    now in flight."""
    topic = entry_topic(scope, token.topic)
    lock_recipient_for_suppression(session, token.organization_id, token.email)
    if _erased(session, token):
        return Unsubscribed(topic, False)
    values = {
        "organization_id": token.organization_id,
        "email": token.email,
        "topic": topic,
        "reason": SuppressionReason.UNSUBSCRIBED.value,
        "source": source.value,
        "details": {"message_id": str(token.message_id)},
        "expires_at": None,
    }
    statement = insert(Suppression).values(values)
    replaceable = (Suppression.reason == SuppressionReason.SOFT_BOUNCE) | (
        Suppression.expires_at.is_not(None) & (Suppression.expires_at <= now)
    )
    written = session.execute(
        statement.on_conflict_do_update(
            index_elements=[Suppression.organization_id, Suppression.email, Suppression.topic],
            set_={key: statement.excluded[key] for key in ("reason", "source", "details", "expires_at")},
            where=replaceable,
        ).returning(Suppression.id)
    ).first()
    _record_metric(session, token, topic, scope, source, now)
    return Unsubscribed(topic, written is not None)


def resubscribe(session: Session, token: ResubscribeToken) -> bool:
    """Remove the entry the undo link names, if an unsubscribe link made it; whether one was removed."""
    lock_recipient_for_suppression(session, token.organization_id, token.email)
    removed = session.execute(
        delete(Suppression)
        .where(
            Suppression.organization_id == token.organization_id,
            Suppression.email == token.email,
            Suppression.topic == token.topic,
            Suppression.reason == SuppressionReason.UNSUBSCRIBED,
            Suppression.source.in_(SOURCES),
        )
        .returning(Suppression.id)
    ).first()
    return removed is not None


def _erased(session: Session, token: UnsubscribeToken) -> bool:
    """Whether the token's recipient was erased (``pilot erase``): suppressed for everything by the
    address's hash, so a click on an old email writes nothing that would name them again."""
    hashed = address_hash(token.organization_id, token.email)
    return (
        session.scalar(
            select(Suppression.id).where(
                Suppression.organization_id == token.organization_id,
                Suppression.email == hashed,
                Suppression.topic == EVERYTHING,
            )
        )
        is not None
    )


_INSERT_METRIC = text(
    """
WITH m AS (
    SELECT id, task_id, connector_id, created_at FROM email_messages
    WHERE id = :message AND organization_id = :org
), written AS (
    INSERT INTO email_metrics
        (message_id, task_id, connector_id, event, recipient, status, metadata, occurred_at)
    SELECT m.id, m.task_id, m.connector_id, :event, :email, NULL, CAST(:metadata AS jsonb), :now
    FROM (SELECT 1) AS one LEFT JOIN m ON true
    WHERE NOT EXISTS (
        SELECT FROM email_metrics e
        WHERE e.event = :event AND e.recipient = :email AND e.metadata->>'message_id' = :message_text
            AND e.metadata->>'topic' = :topic
    )
    RETURNING message_id, task_id
)
SELECT written.message_id, written.task_id, m.created_at FROM written LEFT JOIN m ON m.id = written.message_id
"""
)


def _record_metric(
    session: Session,
    token: UnsubscribeToken,
    topic: str,
    scope: Scope,
    source: UnsubscribeSource,
    now: datetime,
) -> None:
    """One ``email_metrics`` row per email and entry topic (a repeat adds none), linked to the ledger
    row while it exists, counted in its task's figures."""
    metadata = {
        "message_id": str(token.message_id),
        "topic": topic,
        "email_topic": token.topic or "",
        "scope": scope.value,
        "source": source.value,
    }
    written = session.execute(
        _INSERT_METRIC,
        {
            "event": EventType.UNSUBSCRIBED.value,
            "email": token.email,
            "metadata": json.dumps(metadata),
            "now": now,
            "message": token.message_id,
            "message_text": str(token.message_id),
            "org": token.organization_id,
            "topic": topic,
        },
    ).first()
    if written is not None and written.task_id is not None:
        row = delivery.MetricRow(
            written.message_id,
            written.task_id,
            written.created_at,
            EventType.UNSUBSCRIBED.value,
            email_topic=token.topic or "",
        )
        delivery.apply(session, delivery.Figures([row]))


__all__ = [
    "UnsubscribeSource",
    "Unsubscribed",
    "organization_name",
    "resubscribe",
    "unsubscribe",
]
