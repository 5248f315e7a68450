"""shared.resend_events: Resend webhook bodies normalized, tolerant of missing and odd fields."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.resend_bounces import BounceSource, BounceType
from shared.resend_events import RESEND_EVENT_TYPES, EventType, parse_event, parse_time

EMAIL_ID = "56761188-7520-42d8-8898-ff6fc54ce618"


def body(event_type: str, **data: Any) -> dict[str, Any]:
    return {
        "type": event_type,
        "created_at": "2026-02-22T23:41:12.126Z",
        "data": {"email_id": EMAIL_ID, "to": ["delivered@resend.dev"], "subject": "Hi", **data},
    }


@pytest.mark.parametrize(
    ("resend_type", "expected"),
    [
        ("email.sent", EventType.SENT),
        ("email.scheduled", EventType.SCHEDULED),
        ("email.delivered", EventType.DELIVERED),
        ("email.delivery_delayed", EventType.DELIVERY_DELAYED),
        ("email.complained", EventType.COMPLAINED),
        ("email.bounced", EventType.BOUNCED),
        ("email.opened", EventType.OPENED),
        ("email.clicked", EventType.CLICKED),
        ("email.failed", EventType.FAILED),
        ("email.suppressed", EventType.SUPPRESSED),
        ("email.received", EventType.RECEIVED),
    ],
)
def test_parse_event_maps_every_email_type(resend_type: str, expected: EventType) -> None:
    assert parse_event(body(resend_type)).type is expected


def test_event_type_table_covers_the_eleven_email_types() -> None:
    assert len(RESEND_EVENT_TYPES) == 11
    assert all(name.startswith("email.") for name in RESEND_EVENT_TYPES)


@pytest.mark.parametrize(
    "resend_type", ["contact.created", "domain.updated", "email.unheard_of", "", 42, None]
)
def test_parse_event_unknown_type_is_unknown(resend_type: Any) -> None:
    assert parse_event({"type": resend_type, "data": {}}).type is EventType.UNKNOWN


def test_parse_event_reads_common_fields() -> None:
    event = parse_event(body("email.delivered", tags={"task_id": "t-1"}))
    assert event.email_id == EMAIL_ID
    assert event.recipient == "delivered@resend.dev"
    assert event.subject == "Hi"
    assert event.created_at == datetime(2026, 2, 22, 23, 41, 12, 126000, tzinfo=UTC)
    assert event.tags == {"task_id": "t-1"}
    assert event.raw_type == "email.delivered"


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"type": "email.sent"},
        {"type": "email.sent", "data": None},
        {"type": "email.sent", "data": []},
        {"type": "email.sent", "data": {"to": "x"}, "created_at": 12},
        {"data": {"tags": ["odd"]}},
    ],
)
def test_parse_event_missing_or_odd_fields_become_none(payload: dict[str, Any]) -> None:
    event = parse_event(payload)
    assert event.email_id is None
    assert event.created_at is None


@pytest.mark.parametrize(
    ("bounce_type", "hard", "soft"),
    [
        ("Permanent", True, False),
        ("Transient", False, True),
        ("Undetermined", False, True),
        ("Weird", False, True),
    ],
)
def test_parse_event_bounce_classification(bounce_type: str, hard: bool, soft: bool) -> None:
    event = parse_event(
        body("email.bounced", bounce={"type": bounce_type, "subType": "General", "message": "m"})
    )
    assert (event.is_hard_bounce, event.is_soft_bounce) == (hard, soft)
    assert event.bounce_subtype == "General"


def test_parse_event_bounce_type_is_enum() -> None:
    assert (
        parse_event(body("email.bounced", bounce={"type": "Permanent"})).bounce_type is BounceType.PERMANENT
    )


def test_parse_event_tags_give_our_ids_not_the_rfc_message_id() -> None:
    message_id, task_id = uuid.uuid4(), uuid.uuid4()
    event = parse_event(
        body(
            "email.sent",
            message_id="<abc@resend.dev>",
            tags={"message_id": str(message_id), "task_id": str(task_id)},
        )
    )
    assert (event.tagged_message_id, event.tagged_task_id) == (message_id, task_id)


def test_parse_event_tags_in_send_format_are_accepted() -> None:
    event = parse_event(body("email.sent", tags=[{"name": "task_id", "value": "t"}, {"bad": 1}]))
    assert event.tags == {"task_id": "t"}


def test_parse_event_non_uuid_tags_are_none() -> None:
    event = parse_event(body("email.sent", tags={"message_id": "not-a-uuid", "task_id": "t-123"}))
    assert (event.tagged_message_id, event.tagged_task_id) == (None, None)


@pytest.mark.parametrize(
    ("field", "value", "attribute", "expected"),
    [
        ("click", {"link": "https://x.test/a"}, "click_link", "https://x.test/a"),
        ("failed", {"reason": "reached_daily_quota"}, "failed_reason", "reached_daily_quota"),
        ("suppressed", {"reason": "previous_bounce"}, "suppressed_reason", "previous_bounce"),
    ],
)
def test_parse_event_event_specific_objects(field: str, value: Any, attribute: str, expected: str) -> None:
    assert getattr(parse_event(body("email.x", **{field: value})), attribute) == expected


@pytest.mark.parametrize("value", ["2026-02-22T23:41:12", "yesterday", "", None, 5])
def test_parse_time_refuses_naive_or_garbage(value: Any) -> None:
    assert parse_time(value) is None


@pytest.mark.parametrize(
    "to",
    [["Recipient <To@Example.org>", "to2@example.org"], "Recipient <to@example.ORG>", [" TO@example.org "]],
)
def test_parse_event_recipient_is_the_bare_lower_case_address(to: Any) -> None:
    assert parse_event(body("email.sent", to=to)).recipient == "to@example.org"


def test_parse_event_unparsable_recipient_is_kept_trimmed_and_lower_cased() -> None:
    assert parse_event(body("email.sent", to=["Not An Address"])).recipient == "not an address"


def bounced(bounce: dict[str, Any]) -> dict[str, Any]:
    return {"type": "email.bounced", "data": {"email_id": "e", "to": ["a@example.com"], "bounce": bounce}}


@pytest.mark.parametrize(
    "message",
    [
        "The recipient's email provider sent a hard bounce message, but didn't specify the reason.",
        "Resend has suppressed sending to this address because it is on the account-level suppression "
        "list. This does not count toward your bounce rate metric",
    ],
    ids=["hard-bounce-message", "account-suppression-list"],
)
def test_parse_event_bounce_without_type_whose_message_is_permanent_is_hard(message: str) -> None:
    event = parse_event(bounced({"message": message}))
    assert (event.is_hard_bounce, event.is_soft_bounce) == (True, False)
    assert (event.bounce_type, event.bounce_type_source) == (BounceType.PERMANENT, BounceSource.MESSAGE)


def test_parse_event_bounce_without_type_or_known_message_is_soft() -> None:
    event = parse_event(bounced({"message": "Something went wrong"}))
    assert (event.is_hard_bounce, event.is_soft_bounce) == (False, True)
    assert (event.bounce_type, event.bounce_type_source) == (None, None)
