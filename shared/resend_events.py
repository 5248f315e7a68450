"""Resend webhook events, normalized on entry: one :class:`TrackingEvent` per stored delivery.

Parsing is tolerant: a missing or ill-typed field becomes ``None``, an unknown ``type``
:attr:`EventType.UNKNOWN`; the raw payload stays in ``webhook_events``. The recipient is the bare,
lower-cased address, and a bounce's type is classified even when the payload omits it.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.addresses import mailbox_key
from shared.resend_bounces import BounceSource, BounceType, classify_bounce


class EventType(enum.StrEnum):
    """Our names for Resend's outbound email events (``email.`` prefix dropped)."""

    SENT = "sent"
    SCHEDULED = "scheduled"
    DELIVERED = "delivered"
    DELIVERY_DELAYED = "delivery_delayed"
    COMPLAINED = "complained"
    BOUNCED = "bounced"
    OPENED = "opened"
    CLICKED = "clicked"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    RECEIVED = "received"
    UNKNOWN = "unknown"
    #: Ours, not Resend's: the recipient used the email's unsubscribe link (one-click or the page).
    UNSUBSCRIBED = "unsubscribed"


# All eleven email.* types (https://resend.com/docs/webhooks/event-types).
# contact.*, domain.*, suppression.* and topic.* are not about a sent email: they map to UNKNOWN.
RESEND_EVENT_TYPES: dict[str, EventType] = {
    "email.sent": EventType.SENT,
    "email.scheduled": EventType.SCHEDULED,
    "email.delivered": EventType.DELIVERED,
    "email.delivery_delayed": EventType.DELIVERY_DELAYED,
    "email.complained": EventType.COMPLAINED,
    "email.bounced": EventType.BOUNCED,
    "email.opened": EventType.OPENED,
    "email.clicked": EventType.CLICKED,
    "email.failed": EventType.FAILED,
    "email.suppressed": EventType.SUPPRESSED,
    "email.received": EventType.RECEIVED,
}


@dataclass(frozen=True)
class TrackingEvent:
    """A normalized Resend email event. Every field but ``type`` and ``raw_type`` may be ``None``.

    ``recipient`` is the bare, lower-cased address of the first ``to`` (each of our emails has one).
    ``bounce_type`` is the classified type; ``bounce_type_source`` says whether it was read from the
    payload's ``type`` or inferred from its ``subType`` or ``message`` (None: unclassified).
    """

    type: EventType
    raw_type: str
    created_at: datetime | None = None
    email_id: str | None = None
    recipient: str | None = None
    subject: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    bounce_type: BounceType | None = None
    bounce_type_source: BounceSource | None = None
    bounce_subtype: str | None = None
    bounce_message: str | None = None
    click_link: str | None = None
    failed_reason: str | None = None
    suppressed_reason: str | None = None

    @property
    def is_hard_bounce(self) -> bool:
        """A ``Permanent`` bounce: the address is suppressed at once."""
        return self.type is EventType.BOUNCED and self.bounce_type is BounceType.PERMANENT

    @property
    def is_soft_bounce(self) -> bool:
        """A ``Transient``, ``Undetermined`` or unclassifiable bounce: escalates by policy only."""
        return self.type is EventType.BOUNCED and not self.is_hard_bounce

    @property
    def tagged_message_id(self) -> uuid.UUID | None:
        """Our ledger id from the ``message_id`` tag (not ``data.message_id``, the RFC Message-ID)."""
        return _uuid(self.tags.get("message_id"))

    @property
    def tagged_task_id(self) -> uuid.UUID | None:
        """Our task id from the ``task_id`` tag."""
        return _uuid(self.tags.get("task_id"))


def event_type(raw_type: object) -> EventType:
    """Our :class:`EventType` for a Resend ``type`` string; anything else is ``UNKNOWN``."""
    return (
        RESEND_EVENT_TYPES.get(raw_type, EventType.UNKNOWN)
        if isinstance(raw_type, str)
        else EventType.UNKNOWN
    )


def parse_event(payload: Mapping[str, Any]) -> TrackingEvent:
    """Normalize a Resend webhook body (``{"type", "created_at", "data": {...}}``)."""
    data = _mapping(payload.get("data"))
    raw_type = payload.get("type")
    bounce = _mapping(data.get("bounce"))
    bounce_type, bounce_type_source = classify_bounce(bounce)
    return TrackingEvent(
        type=event_type(raw_type),
        raw_type=raw_type if isinstance(raw_type, str) else "",
        created_at=parse_time(payload.get("created_at")),
        email_id=_text(data.get("email_id")),
        recipient=_first_recipient(data.get("to")),
        subject=_text(data.get("subject")),
        tags=_tags(data.get("tags")),
        bounce_type=bounce_type,
        bounce_type_source=bounce_type_source,
        bounce_subtype=_text(bounce.get("subType")),
        bounce_message=_text(bounce.get("message")),
        click_link=_text(_mapping(data.get("click")).get("link")),
        failed_reason=_text(_mapping(data.get("failed")).get("reason")),
        suppressed_reason=_text(_mapping(data.get("suppressed")).get("reason")),
    )


def parse_time(value: object) -> datetime | None:
    """An aware datetime from Resend's ISO 8601 (``2026-02-22T23:41:12.126Z``), else ``None``."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    # A naive time would compare badly with aware ones; Resend's are UTC.
    return parsed if parsed.tzinfo is not None else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _first_recipient(value: object) -> str | None:
    # One recipient per email of ours, so the first `to` is the address concerned.
    first = value[0] if isinstance(value, list) and value else value
    text = _text(first)
    return mailbox_key(text) if text is not None else None


def _tags(value: object) -> dict[str, str]:
    # Webhooks carry tags as an object; the send format (a list of {name, value}) is accepted too.
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items() if isinstance(v, str)}
    if isinstance(value, list):
        pairs = (_mapping(item) for item in value)
        return {
            p["name"]: p["value"]
            for p in pairs
            if isinstance(p.get("name"), str) and isinstance(p.get("value"), str)
        }
    return {}


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None
