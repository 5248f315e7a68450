"""shared.sending.payloads: what pilot.send_email and pilot.send_batch accept, and how refusals read."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from shared.errors import PayloadInvalid
from shared.sending.payloads import (
    EmailFields,
    RefusedEmail,
    ResumePayload,
    SendEmailPayload,
    parse_emails,
    parse_send_batch,
    parse_send_email,
    storable_text,
)

CONNECTOR = str(uuid.uuid4())


def payload(**fields: Any) -> dict[str, Any]:
    return {"connector_id": CONNECTOR, "to": "a@example.test", "subject": "Hi", "html": "<p>x</p>", **fields}


def test_parse_send_email_accepts_a_single_address_as_a_list() -> None:
    parsed = parse_send_email(payload())

    assert isinstance(parsed, SendEmailPayload) and parsed.to == ["a@example.test"]


def test_parse_send_email_accepts_body_as_the_older_name_of_html() -> None:
    fields = payload(body="<p>b</p>")
    del fields["html"]

    parsed = parse_send_email(fields)

    assert isinstance(parsed, SendEmailPayload) and parsed.html_body == "<p>b</p>"


def test_parse_send_email_accepts_tags_as_a_mapping() -> None:
    parsed = parse_send_email(payload(tags={"campaign": "spring"}, metadata={"segment": "vip"}))

    assert isinstance(parsed, SendEmailPayload)
    assert [(t.name, t.value) for t in parsed.all_tags()] == [("campaign", "spring"), ("segment", "vip")]


def test_parse_send_email_with_message_ids_is_a_resume() -> None:
    parsed = parse_send_email({"connector_id": CONNECTOR, "message_ids": [str(uuid.uuid4())]})

    assert isinstance(parsed, ResumePayload)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (payload(subjet="typo"), "subjet: unknown field"),
        (payload(to="not-an-address"), "to.0: must be one address"),
        (payload(to="a@example.test, b@example.test"), "to.0: must be one address"),
        (payload(to="a@example.test (comment)"), "to.0: must be one address"),
        (payload(cc=["Doe, John <j@example.test>"]), "cc.0: a display name holding"),
        (payload(bcc="a@example.test\r\nBcc: x@evil.test"), "bcc.0: must not contain line breaks"),
        (payload(cc=[f"c{i}@example.test" for i in range(51)]), "cc: Value should have at most 50 items"),
        (payload(headers={"Bcc": "x@evil.test"}), "header Bcc: addresses go in from, to, cc, bcc"),
        (payload(headers={"to": "x@evil.test"}), "header to: addresses go in"),
        (payload(headers={"From": "x@evil.test"}), "header From: addresses go in"),
        (payload(subject="a\x00b"), "subject: must not contain NUL characters"),
        (payload(html="<p>\x00</p>"), "html: must not contain NUL characters"),
        (payload(to=["ok@example.test", "a\x00@example.test"]), "to.1: must not contain NUL characters"),
        (payload(subject="a\ud800b"), "subject: must be valid Unicode (no lone surrogates)"),
        (payload(metadata={"k\x00": "v"}), "metadata: a field name must not contain NUL characters"),
        (payload(to=[]), "to: Value should have at least 1 item"),
        (payload(connector_id="nope"), "connector_id: Input should be a valid UUID"),
        ({k: v for k, v in payload().items() if k != "subject"}, "subject: Field required"),
        ({k: v for k, v in payload().items() if k != "html"}, "html, body or text is required"),
        (payload(body="<p>b</p>"), "give html or body"),
        (payload(tags={"task_id": "x"}), "are set by the worker"),
        (payload(headers={"X-Task-ID": "x"}), "X-Task-ID is set by the worker"),
        (payload(idempotency_key="has space"), "printable ASCII"),
        (payload(metadata={"bad name": "v"}), "metadata.bad name"),
        (
            {"connector_id": CONNECTOR, "message_ids": [str(uuid.uuid4())], "to": "a@x.test"},
            "to: unknown field",
        ),
    ],
)
def test_parse_send_email_refuses_naming_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(PayloadInvalid, match="invalid send_email payload") as raised:
        parse_send_email(fields)

    assert message in str(raised.value)


def test_parse_send_email_never_echoes_values() -> None:
    with pytest.raises(PayloadInvalid) as raised:
        parse_send_email(payload(to="secret-looking-value"))

    assert "secret-looking-value" not in str(raised.value)


def test_parse_emails_refuses_only_the_invalid_email_of_a_batch() -> None:
    good = {"to": "a@example.test", "subject": "Hi", "html": "<p>x</p>"}
    batch = parse_send_batch(
        {"connector_id": CONNECTOR, "emails": [good, {"to": "b@example.test", "html": "x"}, "junk"]}
    )

    valid, missing_subject, junk = parse_emails(batch.emails)

    assert isinstance(valid, EmailFields)
    assert isinstance(missing_subject, RefusedEmail) and missing_subject.index == 1
    assert "emails.1.subject: Field required" in missing_subject.reason
    assert isinstance(junk, RefusedEmail) and "emails.2: must be an object" in junk.reason


def test_parse_emails_names_unstorable_text_in_its_email() -> None:
    [refused] = parse_emails([{"to": "a@example.test", "subject": "a\x00", "html": "<p>x</p>"}])

    assert isinstance(refused, RefusedEmail) and "emails.0.subject: must not contain NUL" in refused.reason


def test_storable_text_replaces_nul_and_lone_surrogates() -> None:
    assert storable_text("a\x00b\ud800c") == "a\ufffdb\ufffdc"
    assert storable_text("plain") == "plain"


def test_parse_send_batch_refuses_an_empty_batch() -> None:
    with pytest.raises(PayloadInvalid, match="emails: List should have at least 1 item"):
        parse_send_batch({"connector_id": CONNECTOR, "emails": []})
