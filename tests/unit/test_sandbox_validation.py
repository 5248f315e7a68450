"""Send-body validation as Resend does it."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.api_errors import ApiError
from sandbox.validation import check_idempotency_key, validate_batch, validate_email

VALID = {"from": "Acme <onboarding@resend.dev>", "to": "a@example.com", "subject": "Hi"}
#: 2026-11-01T12:00:00Z, the sandbox's clock in these tests.
NOW = 1793534400.0


def test_validate_email_turns_recipient_strings_into_lists() -> None:
    email = validate_email({**VALID, "cc": "c@example.com", "reply_to": "r@example.com"}, now=NOW)
    assert email["to"] == ["a@example.com"]
    assert email["cc"] == ["c@example.com"]
    assert email["reply_to"] == ["r@example.com"]


def test_validate_email_accepts_named_addresses_and_template_without_subject() -> None:
    email = validate_email(
        {"from": "a@b.co", "to": ["Bob <bob@example.com>"], "template": {"id": "t"}}, now=NOW
    )
    assert email["to"] == ["Bob <bob@example.com>"]


def test_validate_email_accepts_50_recipients_and_75_tags() -> None:
    tags = [{"name": f"n{i}", "value": "v"} for i in range(75)]
    email = validate_email({**VALID, "to": [f"u{i}@example.com" for i in range(50)], "tags": tags}, now=NOW)
    assert len(email["tags"]) == 75


INVALID: dict[str, tuple[Any, int, str]] = {
    "not-an-object": (["x"], 400, "validation_error"),
    "missing-from": ({"to": "a@example.com", "subject": "s"}, 422, "missing_required_field"),
    "missing-to": ({"from": "a@b.co", "subject": "s"}, 422, "missing_required_field"),
    "empty-to": ({**VALID, "to": []}, 422, "missing_required_field"),
    "missing-subject": ({"from": "a@b.co", "to": "a@example.com"}, 422, "missing_required_field"),
    "bad-from": ({**VALID, "from": "nobody"}, 400, "validation_error"),
    "from-not-string": ({**VALID, "from": 7}, 400, "validation_error"),
    "bad-to": ({**VALID, "to": "not an address"}, 400, "validation_error"),
    "to-not-list": ({**VALID, "to": {"a": 1}}, 400, "validation_error"),
    "bad-cc": ({**VALID, "cc": ["x"]}, 400, "validation_error"),
    "51-recipients": ({**VALID, "to": [f"u{i}@example.com" for i in range(51)]}, 400, "validation_error"),
    "76-tags": (
        {**VALID, "tags": [{"name": f"n{i}", "value": "v"} for i in range(76)]},
        400,
        "validation_error",
    ),
    "tag-bad-char": ({**VALID, "tags": [{"name": "a b", "value": "v"}]}, 400, "validation_error"),
    "tag-dot": ({**VALID, "tags": [{"name": "a", "value": "v.1"}]}, 400, "validation_error"),
    "tag-too-long": ({**VALID, "tags": [{"name": "a", "value": "v" * 257}]}, 400, "validation_error"),
    "tag-missing-value": ({**VALID, "tags": [{"name": "a"}]}, 400, "validation_error"),
    "tags-not-list": ({**VALID, "tags": {"a": "b"}}, 400, "validation_error"),
    "headers-not-object": ({**VALID, "headers": ["X: y"]}, 400, "validation_error"),
    "header-value-not-string": ({**VALID, "headers": {"X-N": 1}}, 400, "validation_error"),
    "attachment-empty": ({**VALID, "attachments": [{"filename": "a.txt"}]}, 422, "invalid_attachment"),
    "attachments-not-list": ({**VALID, "attachments": "x"}, 400, "validation_error"),
}


@pytest.mark.parametrize(("payload", "status", "name"), INVALID.values(), ids=INVALID.keys())
def test_validate_email_refuses_invalid_payload(payload: Any, status: int, name: str) -> None:
    with pytest.raises(ApiError) as caught:
        validate_email(payload, now=NOW)
    assert (caught.value.status, caught.value.name) == (status, name)


def test_tag_of_256_chars_is_accepted() -> None:
    assert (
        validate_email({**VALID, "tags": [{"name": "a", "value": "v" * 256}]}, now=NOW)["tags"][0]["value"]
        == "v" * 256
    )


def test_attachments_are_allowed_outside_batch_only() -> None:
    payload = {**VALID, "attachments": [{"content": "aGk=", "filename": "a.txt"}]}
    validate_email(payload, now=NOW)
    with pytest.raises(ApiError, match="ttachments"):
        validate_email(payload, in_batch=True, now=NOW)


@pytest.mark.parametrize("payload", [{}, [], [VALID] * 101, "x"])
def test_validate_batch_refuses_non_arrays_and_bad_sizes(payload: Any) -> None:
    with pytest.raises(ApiError):
        validate_batch(payload)


@pytest.mark.parametrize("key", [None, "k", "k" * 256])
def test_idempotency_key_of_1_to_256_chars_or_none_passes(key: str | None) -> None:
    check_idempotency_key(key)


@pytest.mark.parametrize("key", ["", "k" * 257])
def test_idempotency_key_outside_bounds_is_invalid_idempotency_key(key: str) -> None:
    with pytest.raises(ApiError) as caught:
        check_idempotency_key(key)
    assert (caught.value.status, caught.value.name) == (400, "invalid_idempotency_key")


@pytest.mark.parametrize("body_field", ["html", "text"])
def test_validate_email_refuses_template_with_a_body(body_field: str) -> None:
    payload = {**VALID, "template": {"id": "welcome"}, body_field: "<p>Hi</p>"}
    with pytest.raises(ApiError) as caught:
        validate_email(payload, now=NOW)
    assert (caught.value.status, caught.value.name) == (400, "validation_error")
    assert "`template`" in caught.value.message and f"`{body_field}`" in caught.value.message


@pytest.mark.parametrize("template", ["welcome", {}, {"id": ""}, {"variables": {"a": "b"}}])
def test_validate_email_refuses_a_template_without_an_id(template: Any) -> None:
    with pytest.raises(ApiError, match="`template`") as caught:
        validate_email({**VALID, "template": template}, now=NOW)
    assert caught.value.status == 400


def test_validate_email_scheduled_at_sets_when_to_send() -> None:
    email = validate_email({**VALID, "scheduled_at": "2026-11-01T12:05:00.000Z"}, now=NOW)
    assert email["send_at"] == NOW + 300


def test_validate_email_without_scheduled_at_sends_at_once() -> None:
    assert validate_email(VALID, now=NOW)["send_at"] is None


def test_validate_email_refuses_an_unreadable_scheduled_at_naming_the_field() -> None:
    with pytest.raises(ApiError, match="`scheduled_at`") as caught:
        validate_email({**VALID, "scheduled_at": "whenever suits"}, now=NOW)
    assert (caught.value.status, caught.value.name) == (400, "validation_error")


def test_an_attachment_is_described_by_the_size_and_sha256_of_its_decoded_content() -> None:
    email = validate_email({**VALID, "attachments": [{"content": "aGk=", "filename": "a.txt"}]}, now=NOW)

    assert email["attachment_summary"] == [
        {
            "filename": "a.txt",
            "size": 2,
            "sha256": "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4",
        }
    ]


def test_attachment_content_that_is_not_base64_is_refused() -> None:
    with pytest.raises(ApiError) as refused:
        validate_email({**VALID, "attachments": [{"content": "not base64!", "filename": "a.txt"}]}, now=NOW)

    assert refused.value.name == "invalid_attachment"


def test_attachments_over_40_mb_of_base64_are_refused() -> None:
    huge = "A" * (40 * 1024 * 1024 + 4)

    with pytest.raises(ApiError) as refused:
        validate_email({**VALID, "attachments": [{"content": huge, "filename": "big.bin"}]}, now=NOW)

    assert "40 MB" in refused.value.message


def test_an_inline_image_keeps_its_content_id() -> None:
    pixel = {"content": "aGk=", "filename": "logo.png", "content_type": "image/png", "content_id": "logo"}

    [described] = validate_email({**VALID, "attachments": [pixel]}, now=NOW)["attachment_summary"]

    assert (described["content_id"], described["content_type"]) == ("logo", "image/png")


def test_an_attachment_by_path_is_described_by_its_url_without_a_checksum() -> None:
    remote = {"path": "https://files.example.com/invoice.pdf", "filename": "invoice.pdf"}

    [described] = validate_email({**VALID, "attachments": [remote]}, now=NOW)["attachment_summary"]

    assert described == remote


def test_the_40_mb_limit_is_on_the_whole_email_not_each_attachment() -> None:
    half = "A" * (20 * 1024 * 1024 + 4)
    two = [{"content": half, "filename": "a.bin"}, {"content": half, "filename": "b.bin"}]

    with pytest.raises(ApiError) as refused:
        validate_email({**VALID, "attachments": two}, now=NOW)

    assert "40 MB" in refused.value.message
