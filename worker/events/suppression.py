"""Suppressions that webhook events cause.

Hard bounce → ``hard_bounce``, complaint → ``spam_complaint``, ``email.suppressed`` →
``provider_suppressed``, all without expiry; soft bounces escalate by :mod:`worker.events.bounce_policy`,
judged on the address's history across the organization in ``email_metrics``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.models import EmailMessage, EmailMetric, Suppression, SuppressionReason
from shared.resend_events import EventType, TrackingEvent
from shared.suppression import lock_recipient_for_suppression, suppress
from worker.events.bounce_policy import DeliveryFact, SoftBouncePolicy, soft_bounce_expiry

#: ``suppression_list.source`` of every entry written here.
SOURCE = "resend_webhook"

_IMMEDIATE = {
    EventType.COMPLAINED: SuppressionReason.SPAM_COMPLAINT,
    EventType.SUPPRESSED: SuppressionReason.PROVIDER_SUPPRESSED,
}


def apply_suppression(
    session: Session, message: EmailMessage, event: TrackingEvent, *, policy: SoftBouncePolicy
) -> str | None:
    """Suppress ``message``'s recipient if ``event`` calls for it; returns the reason, if any."""
    reason = SuppressionReason.HARD_BOUNCE if event.is_hard_bounce else _IMMEDIATE.get(event.type)
    if reason is not None or event.is_soft_bounce:
        # A send to this address may be between its suppression check and its HTTP call: wait for
        # it, so no email is delivered after this suppression commits.
        lock_recipient_for_suppression(session, message.organization_id, message.recipient)
    if reason is not None:
        suppress(
            session,
            message.organization_id,
            message.recipient,
            reason,
            source=SOURCE,
            details=_details(event),
        )
        return reason
    if event.is_soft_bounce:
        return _escalate_soft_bounces(session, message, event, policy)
    return None


def _escalate_soft_bounces(
    session: Session, message: EmailMessage, event: TrackingEvent, policy: SoftBouncePolicy
) -> str | None:
    expires_at = soft_bounce_expiry(delivery_history(session, message), policy)
    if expires_at is None or _already_covered(session, message, expires_at):
        return None
    details = {**_details(event), "policy": f"{policy.count} soft bounces over {policy.span}"}
    suppress(
        session,
        message.organization_id,
        message.recipient,
        SuppressionReason.SOFT_BOUNCE,
        source=SOURCE,
        details=details,
        expires_at=expires_at,
    )
    return SuppressionReason.SOFT_BOUNCE


def delivery_history(session: Session, message: EmailMessage) -> list[DeliveryFact]:
    """Deliveries and bounces of ``message``'s recipient in its organization (case-insensitive)."""
    rows = session.execute(
        select(EmailMetric.event, EmailMetric.occurred_at, EmailMetric.metadata_["bounce_type"].astext)
        .join(EmailMessage, EmailMessage.id == EmailMetric.message_id)
        .where(EmailMessage.organization_id == message.organization_id)
        .where(func.lower(EmailMessage.recipient) == message.recipient.lower())
        .where(EmailMetric.event.in_((EventType.DELIVERED, EventType.BOUNCED)))
    ).all()
    return [DeliveryFact(_kind(event, bounce_type), occurred_at) for event, occurred_at, bounce_type in rows]


def _kind(event: str, bounce_type: str | None) -> str:
    if event == EventType.DELIVERED:
        return EventType.DELIVERED
    return SuppressionReason.HARD_BOUNCE if bounce_type == "Permanent" else SuppressionReason.SOFT_BOUNCE


def _already_covered(session: Session, message: EmailMessage, expires_at: datetime) -> bool:
    """Whether an existing entry lasts at least as long (a permanent one is never shortened)."""
    existing = session.scalars(
        select(Suppression.expires_at).where(
            Suppression.organization_id == message.organization_id,
            Suppression.email == message.recipient.lower(),
        )
    ).all()
    return any(current is None or current >= expires_at for current in existing)


def _details(event: TrackingEvent) -> dict[str, str]:
    values = {
        "event": event.raw_type,
        "resend_email_id": event.email_id,
        "bounce_type": event.bounce_type.value if event.bounce_type else None,
        "bounce_type_source": event.bounce_type_source.value if event.bounce_type_source else None,
        "bounce_subtype": event.bounce_subtype,
        "suppressed_reason": event.suppressed_reason,
    }
    return {key: value for key, value in values.items() if value is not None}
