"""The event parser on every real Resend webhook body we hold (tests/fixtures/resend_webhooks)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.resend_bounces import BounceSource, BounceType
from shared.resend_events import EventType, parse_event
from tests.real_payloads import DIRECTORY, payload_names, real_payload

NAMES = payload_names()


def test_real_payloads_are_there_and_each_has_its_source_recorded() -> None:
    readme = (DIRECTORY / "README.md").read_text(encoding="utf-8")
    assert len(NAMES) >= 19
    assert [name for name in NAMES if f"`{name}`" not in readme] == []


@pytest.mark.parametrize("name", NAMES)
def test_parse_event_reads_the_type_and_email_of_every_real_payload(name: str) -> None:
    payload = real_payload(name)
    event = parse_event(payload)
    assert event.type is not EventType.UNKNOWN
    assert event.raw_type == payload["type"]
    assert event.email_id == payload["data"]["email_id"]


@pytest.mark.parametrize("name", [name for name in NAMES if "created_at" in real_payload(name)])
def test_parse_event_reads_the_event_time_of_every_real_payload(name: str) -> None:
    event = parse_event(real_payload(name))
    assert event.created_at is not None
    assert event.created_at.utcoffset() is not None


@pytest.mark.parametrize("name", [name for name in NAMES if real_payload(name)["data"].get("to")])
def test_parse_event_recipient_of_every_real_payload_is_a_bare_lower_case_address(name: str) -> None:
    recipient = parse_event(real_payload(name)).recipient
    assert recipient is not None
    assert recipient == recipient.strip().lower()
    assert "<" not in recipient and recipient.count("@") == 1


EXPECTED: dict[str, dict[str, Any]] = {
    "anymail-email-sent.json": {
        "type": EventType.SENT,
        "recipient": "to@example.org",
        "tags": {"tag1": "Tag_1_value", "tag2": "Tag_2_value"},
    },
    "anymail-email-bounced-hard-without-type.json": {
        "is_hard_bounce": True,
        "bounce_type": BounceType.PERMANENT,
        "bounce_type_source": BounceSource.MESSAGE,
        "recipient": "bounced@resend.dev",
    },
    "anymail-email-bounced-suppressed-without-type.json": {
        "is_hard_bounce": True,
        "bounce_type": BounceType.PERMANENT,
        "bounce_type_source": BounceSource.MESSAGE,
    },
    "anymail-email-delivery-delayed.json": {"type": EventType.DELIVERY_DELAYED},
    "anymail-email-clicked.json": {"click_link": "https://example.com/test"},
    "docs-email-bounced.json": {
        "is_hard_bounce": True,
        "bounce_type": BounceType.PERMANENT,
        "bounce_type_source": BounceSource.TYPE,
        "bounce_subtype": "Suppressed",
        "tags": {"category": "confirm_email"},
    },
    "docs-email-clicked.json": {"type": EventType.CLICKED, "click_link": "https://resend.com"},
    "docs-email-failed.json": {"type": EventType.FAILED, "failed_reason": "reached_daily_quota"},
    "docs-email-scheduled.json": {"type": EventType.SCHEDULED, "recipient": "delivered@resend.dev"},
    "docs-email-suppressed.json": {"type": EventType.SUPPRESSED, "is_hard_bounce": False},
    "resend-python-email-sent-minimal.json": {"type": EventType.SENT, "recipient": None, "created_at": None},
}


@pytest.mark.parametrize(("name", "expected"), EXPECTED.items(), ids=EXPECTED.keys())
def test_parse_event_lifts_what_processing_needs_from_real_payloads(
    name: str, expected: dict[str, Any]
) -> None:
    event = parse_event(real_payload(name))
    assert {attribute: getattr(event, attribute) for attribute in expected} == expected
