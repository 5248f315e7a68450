"""Resend request models: the wire body, and bad input refused with the field named."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared import resend_schemas
from shared.errors import PayloadInvalid
from shared.resend_schemas import (
    BatchResponse,
    CheckedRequest,
    ErrorBody,
    SendEmailRequest,
    Tag,
    check_send_request,
    parse_send_request,
)


def fields(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"from": "a@acme.test", "to": ["b@acme.test"], "subject": "Hi", "text": "Hello"}
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not ...}


def test_to_wire_uses_wire_names_and_leaves_unset_fields_out() -> None:
    request = SendEmailRequest(from_="Acme <a@acme.test>", to=["b@acme.test"], subject="Hi", html="<p>x</p>")
    assert request.to_wire() == {
        "from": "Acme <a@acme.test>",
        "to": ["b@acme.test"],
        "subject": "Hi",
        "html": "<p>x</p>",
    }


def test_to_wire_keeps_a_deterministic_key_order() -> None:
    request = parse_send_request(
        fields(
            tags=[{"name": "t", "value": "v"}],
            reply_to="r@acme.test",
            html="<p/>",
            cc=["c@acme.test"],
            bcc="d@acme.test",
            headers={"X-Entity-Ref-ID": "1"},
            scheduled_at="in 1 min",
            attachments=[{"path": "https://acme.test/a.pdf"}],
        )
    )
    assert list(request.to_wire()) == [
        "from", "to", "subject", "html", "text", "cc", "bcc", "reply_to",
        "headers", "attachments", "tags", "scheduled_at",
    ]  # fmt: skip


def test_from_is_accepted_by_wire_name_or_python_name() -> None:
    by_alias = SendEmailRequest.model_validate(fields())
    by_name = SendEmailRequest(from_="a@acme.test", to=["b@acme.test"], subject="Hi", text="Hello")
    assert by_alias == by_name


@pytest.mark.parametrize("field", ["to", "cc", "bcc", "reply_to"])
def test_a_single_address_string_becomes_a_list(field: str) -> None:
    assert parse_send_request(fields(**{field: "x@acme.test"})).to_wire()[field] == ["x@acme.test"]


@pytest.mark.parametrize(("field", "empty"), [("cc", []), ("bcc", []), ("headers", {}), ("tags", [])])
def test_empty_optional_collections_are_left_out(field: str, empty: Any) -> None:
    assert field not in parse_send_request(fields(**{field: empty})).to_wire()


def test_display_name_addresses_are_accepted() -> None:
    request = parse_send_request(fields(to=['"Doe, Jane" <jane@acme.test>']))
    assert request.to == ['"Doe, Jane" <jane@acme.test>']


def test_an_aware_datetime_is_sent_as_iso_8601() -> None:
    request = parse_send_request(fields(scheduled_at=datetime(2026, 8, 5, 11, 52, tzinfo=UTC)))
    assert request.to_wire()["scheduled_at"] == "2026-08-05T11:52:00+00:00"


def test_an_empty_text_is_kept_to_opt_out_of_generated_plain_text() -> None:
    assert parse_send_request(fields(html="<p/>", text="")).to_wire()["text"] == ""


def test_tag_accepts_256_characters_of_the_allowed_alphabet() -> None:
    assert Tag(name="a" * 256, value="Az09_-").name == "a" * 256


def test_75_tags_are_accepted() -> None:
    tags = [{"name": f"t{n}", "value": "v"} for n in range(75)]
    assert len(parse_send_request(fields(tags=tags)).tags or []) == 75


INVALID = [
    # overrides, the field the message must name
    ({"from": ...}, "from"),
    ({"from": "not an address"}, "from"),
    ({"from": "a@acme.test\r\nBcc: x@evil.test"}, "from"),
    ({"to": ...}, "to"),
    ({"to": []}, "to"),
    ({"to": ["nobody"]}, "to.0"),
    ({"to": [f"r{n}@acme.test" for n in range(51)]}, "to"),
    ({"cc": ["x@"]}, "cc.0"),
    ({"reply_to": "no-at-sign"}, "reply_to.0"),
    ({"subject": ...}, "subject"),
    ({"subject": ""}, "subject"),
    ({"subject": "Hi\nBcc: x@evil.test"}, "subject"),
    ({"text": ..., "html": None}, "html or text"),
    ({"tags": [{"name": "has space", "value": "v"}]}, "tags.0.name"),
    ({"tags": [{"name": "n", "value": "é"}]}, "tags.0.value"),
    ({"tags": [{"name": "n", "value": "v" * 257}]}, "tags.0.value"),
    ({"tags": [{"name": "", "value": "v"}]}, "tags.0.name"),
    ({"tags": [{"name": "n"}]}, "tags.0.value"),
    ({"tags": [{"name": f"t{n}", "value": "v"} for n in range(76)]}, "tags"),
    ({"headers": {"Bad Name": "v"}}, "headers"),
    ({"headers": {"X-Trailing\n": "v"}}, "headers"),
    ({"tags": [{"name": "n", "value": "v\n"}]}, "tags.0.value"),
    ({"to": ["b@acme.test\n"]}, "to.0"),
    ({"headers": {"X-Ok": "line\r\nbreak"}}, "headers"),
    ({"headers": {"X-Number": 5}}, "headers.X-Number"),
    ({"attachments": [{"filename": "a.txt"}]}, "attachments.0"),
    ({"attachments": [{"content": "aGk=", "size": 3}]}, "attachments.0.size"),
    ({"scheduled_at": ""}, "scheduled_at"),
    ({"scheduled_at": datetime(2026, 8, 5, 11, 52)}, "scheduled_at"),
    ({"template": {"id": "t"}}, "template"),
    ({"reply-to": "r@acme.test"}, "reply-to"),
]


@pytest.mark.parametrize(("overrides", "field"), INVALID)
def test_parse_send_request_refuses_bad_input_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(PayloadInvalid) as caught:
        parse_send_request(fields(**overrides))
    assert f"{field}" in str(caught.value)


def test_attachments_over_40_mb_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resend_schemas, "MAX_ATTACHMENT_BYTES", 8)
    with pytest.raises(PayloadInvalid, match="attachments: total size 12"):
        parse_send_request(fields(attachments=[{"content": "aGVsbG8="}, {"content": "aGk="}]))


def test_refusal_messages_never_echo_the_input_value() -> None:
    with pytest.raises(PayloadInvalid) as caught:
        parse_send_request(fields(subject="private-subject\nX", to=["private-recipient"]))
    assert "private" not in str(caught.value)


def test_refusal_messages_are_capped_for_huge_inputs() -> None:
    tags = [{"name": "bad name", "value": "v"}] * 60
    with pytest.raises(PayloadInvalid, match="and 50 more"):
        parse_send_request(fields(tags=tags))


def test_parse_send_request_prefixes_field_names_with_where() -> None:
    with pytest.raises(PayloadInvalid, match=r"requests\[4\]\.subject"):
        parse_send_request(fields(subject=""), where="requests[4].")


def test_parse_send_request_refuses_a_non_mapping() -> None:
    with pytest.raises(PayloadInvalid, match="mapping"):
        parse_send_request(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_models_are_frozen() -> None:
    request = parse_send_request(fields())
    with pytest.raises(ValueError, match="frozen"):
        request.subject = "changed"  # type: ignore[misc]


def test_batch_response_reads_null_errors_as_none_refused() -> None:
    assert BatchResponse.model_validate({"data": [{"id": "a"}], "errors": None}).errors == []


def test_error_body_tolerates_missing_and_odd_fields() -> None:
    body = ErrorBody.model_validate({"statusCode": 422, "message": 5, "extra": True})
    assert (body.status_code, body.name, body.message) == (422, None, "5")


def test_check_send_request_returns_the_mapping_marked_checked() -> None:
    checked = check_send_request(fields())
    assert isinstance(checked, CheckedRequest)
    assert checked == fields()


def test_check_send_request_refuses_an_invalid_mapping_naming_the_field() -> None:
    with pytest.raises(PayloadInvalid, match=r"requests\[2\]\.to\.0: must be one address"):
        check_send_request(fields(to=["not an address"]), where="requests[2].")
