"""What happens to an email: the sequence of Resend events it produces, from what happens to each recipient.

Resend's test addresses behave as documented, with an optional ``+label``; their event sequences are
inferred. Other recipients are delivered, with configurable shares of soft bounces, failures, opens
and clicks. An email to several recipients gets each event type once (Resend sends one per email),
its details from the first recipient whose outcome has it. See docs/architecture.md, "What each folder holds".
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sandbox.config import SandboxConfig

TEST_DOMAIN = "resend.dev"

HARD_BOUNCE = {
    "type": "Permanent",
    "subType": "General",
    "message": "The recipient's email provider sent a hard bounce message: the address does not exist.",
    "diagnosticCode": ["smtp; 550 5.1.1 The email account that you tried to reach does not exist."],
}
SOFT_BOUNCE = {
    "type": "Transient",
    "subType": "MailboxFull",
    "message": "The recipient's mailbox is full.",
    "diagnosticCode": ["smtp; 452 4.2.2 The email account that you tried to reach is over quota."],
}
SUPPRESSED = {
    "type": "OnAccountSuppressionList",
    "message": "Resend has suppressed sending to this address because it is on the account-level "
    "suppression list. This does not count toward your bounce rate metric",
    "reason": "previous_bounce",
    "diagnosticCode": [],
}
FAILED = {"reason": "sandbox_injected_failure"}
#: `timestamp` is filled with the event time when the payload is built.
CLICK = {
    "ipAddress": "203.0.113.7",
    "link": "https://example.com/landing",
    "userAgent": "Mozilla/5.0 (sandbox)",
}


#: The order of one email's events when several recipients' outcomes are merged.
EMAIL_EVENT_ORDER = (
    "email.sent",
    "email.delivery_delayed",
    "email.delivered",
    "email.opened",
    "email.clicked",
    "email.bounced",
    "email.complained",
    "email.failed",
    "email.suppressed",
)
_RANK = {event_type: rank for rank, event_type in enumerate(EMAIL_EVENT_ORDER)}


@dataclass(frozen=True)
class PlannedEvent:
    """One event to send: its Resend type and the event-specific `data` fields."""

    type: str
    extra: dict[str, Any] = field(default_factory=dict)


def plan_email(recipients: Sequence[str], config: SandboxConfig, rng: random.Random) -> list[PlannedEvent]:
    """The events of one email to ``recipients`` (its to, cc and bcc), each type once, in order."""
    if len(recipients) == 1:
        return plan_events(recipients[0], config, rng)
    merged: dict[str, PlannedEvent] = {}
    for recipient in recipients:
        for event in plan_events(recipient, config, rng):
            merged.setdefault(event.type, event)
    return sorted(merged.values(), key=lambda event: _RANK[event.type])


def plan_events(recipient: str, config: SandboxConfig, rng: random.Random) -> list[PlannedEvent]:
    """The events an email to ``recipient`` alone produces, in the order they happen."""
    test_box = _test_mailbox(recipient)
    if test_box == "suppressed":
        return [PlannedEvent("email.suppressed", {"suppressed": dict(SUPPRESSED)})]
    sent = PlannedEvent("email.sent")
    delivered = PlannedEvent("email.delivered")
    if test_box == "delivered":
        return [sent, delivered]
    if test_box == "bounced":
        return [sent, PlannedEvent("email.bounced", {"bounce": dict(HARD_BOUNCE)})]
    if test_box == "complained":
        return [sent, delivered, PlannedEvent("email.complained")]
    return [sent, *_ordinary_outcome(recipient, config, rng)]


def _ordinary_outcome(recipient: str, config: SandboxConfig, rng: random.Random) -> list[PlannedEvent]:
    draw = rng.random()
    if draw < config.fail_rate:
        return [PlannedEvent("email.failed", {"failed": dict(FAILED)})]
    if draw < config.fail_rate + config.soft_bounce_rate:
        return [
            PlannedEvent("email.delivery_delayed"),
            PlannedEvent("email.bounced", {"bounce": dict(SOFT_BOUNCE)}),
        ]
    events = [PlannedEvent("email.delivered")]
    clicked = rng.random() < config.click_rate
    # A click implies the message was opened, so a click always comes with an open first.
    if clicked or rng.random() < config.open_rate:
        events.append(PlannedEvent("email.opened"))
    if clicked:
        events.append(PlannedEvent("email.clicked", {"click": dict(CLICK)}))
    return events


def _test_mailbox(recipient: str) -> str | None:
    """``delivered``/``bounced``/``complained``/``suppressed`` for Resend's test addresses, else None."""
    local, _, domain = recipient.rpartition("<")[2].rstrip(">").strip().lower().partition("@")
    if domain != TEST_DOMAIN:
        return None
    mailbox = local.partition("+")[0]
    return mailbox if mailbox in {"delivered", "bounced", "complained", "suppressed"} else None
