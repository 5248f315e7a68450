"""shared.sending.rendering: deterministic idempotency keys, row ids, chunk keys and the rendered request."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from shared.addresses import bare_address
from shared.errors import PayloadInvalid
from shared.sending.payloads import SendEmailPayload, parse_send_email
from shared.sending.rendering import (
    chunk_key,
    message_id_for,
    message_key,
    recipient_hash,
    render_email,
    task_reference,
)

CONNECTOR = uuid.UUID("5f0c6a2e-6b1e-4a57-8d3a-6c1b8f8f0a11")


def render(task_ref: str = "task-1", **fields: Any) -> list[Any]:
    data = {
        "connector_id": str(CONNECTOR),
        "to": "a@example.test",
        "subject": "Hi",
        "html": "<p>x</p>",
        **fields,
    }
    email = parse_send_email(data)
    assert isinstance(email, SendEmailPayload)
    return render_email(email, connector_id=CONNECTOR, task_ref=task_ref, default_from="me@example.test")


def test_keys_are_deterministic_for_the_same_task_and_content() -> None:
    assert render()[0].idempotency_key == render()[0].idempotency_key


@pytest.mark.parametrize(
    "change", [{"task_ref": "task-2"}, {"subject": "Other"}, {"html": "<p>y</p>"}, {"to": "b@example.test"}]
)
def test_keys_change_with_task_content_or_recipient(change: dict[str, Any]) -> None:
    assert render(**change)[0].idempotency_key != render()[0].idempotency_key


def test_caller_key_is_kept_and_suffixed_per_recipient() -> None:
    a, b = render(idempotency_key="order-42/welcome", to=["a@example.test", "b@example.test"])

    assert a.idempotency_key == f"order-42/welcome/{recipient_hash('a@example.test', scope=CONNECTOR)}"
    assert a.idempotency_key != b.idempotency_key


def test_caller_key_names_another_email_on_another_connector() -> None:
    # Two organizations (two connectors) choosing the same key never share a row or a Resend key.
    email = parse_send_email(
        {
            "connector_id": str(CONNECTOR),
            "to": "a@example.test",
            "subject": "Hi",
            "html": "<p>x</p>",
            "idempotency_key": "invoice/4711",
        }
    )
    assert isinstance(email, SendEmailPayload)
    other = uuid.UUID("0d4f6f0e-9f7e-4c0e-b0a4-3d3b8f1e2c77")

    [mine] = render_email(email, connector_id=CONNECTOR, task_ref="t", default_from="me@example.test")
    [theirs] = render_email(email, connector_id=other, task_ref="t", default_from="me@example.test")

    assert mine.idempotency_key != theirs.idempotency_key and mine.id != theirs.id


def test_caller_key_does_not_depend_on_the_task() -> None:
    assert (
        render("t1", idempotency_key="k")[0].idempotency_key
        == render("t2", idempotency_key="k")[0].idempotency_key
    )


def test_keys_fit_resends_limit_and_charset() -> None:
    key = message_key(
        connector_id=CONNECTOR, task_ref="x" * 500, recipient="a@example.test", content_hash="f" * 64
    )

    assert len(key) <= 256 and key.isascii() and " " not in key


def test_recipient_hash_ignores_case_and_spaces() -> None:
    assert recipient_hash(" Ann@Example.TEST ") == recipient_hash("ann@example.test")


def test_fan_out_gives_one_message_per_mailbox() -> None:
    messages = render(to=["a@example.test", "Bee <b@example.test>", "A@EXAMPLE.test"])

    assert [m.recipient for m in messages] == ["a@example.test", "b@example.test"]
    assert [m.request["to"] for m in messages] == [["a@example.test"], ["Bee <b@example.test>"]]


def test_fan_out_gives_cc_and_bcc_mailboxes_one_email_each_addressed_to_them() -> None:
    messages = render(to="a@example.test", cc=["c@example.test"], bcc=["b@example.test", "C@example.test"])

    assert [m.recipient for m in messages] == ["a@example.test", "c@example.test", "b@example.test"]
    assert [m.request["to"] for m in messages] == [["a@example.test"], ["c@example.test"], ["b@example.test"]]
    assert all("cc" not in m.request and "bcc" not in m.request for m in messages)


def test_fan_out_sends_a_mailbox_in_to_and_bcc_one_copy() -> None:
    messages = render(to=["a@example.test", "b@example.test"], bcc=["A@Example.test"])

    assert [m.recipient for m in messages] == ["a@example.test", "b@example.test"]


def test_content_key_is_the_same_for_one_mailbox_written_in_other_case() -> None:
    [upper] = render(to="Ann <Ann@Example.TEST>")
    [lower] = render(to="ann@example.test")

    assert upper.idempotency_key == lower.idempotency_key
    assert upper.content_hash == lower.content_hash


def test_row_id_is_derived_from_the_key_and_tagged() -> None:
    [message] = render()

    assert message.id == message_id_for(message.idempotency_key)
    assert {"name": "message_id", "value": str(message.id)} in message.request["tags"]


def test_rendered_request_carries_the_task_header_and_no_task_tag_without_a_task_row() -> None:
    [message] = render()

    assert message.request["headers"] == {"X-Task-ID": "task-1"}
    assert all(tag["name"] != "task_id" for tag in message.request["tags"])


def test_rendered_request_without_any_sender_is_refused() -> None:
    email = parse_send_email({"connector_id": str(CONNECTOR), "to": "a@x.test", "subject": "s", "text": "t"})
    assert isinstance(email, SendEmailPayload)

    with pytest.raises(PayloadInvalid, match="from: required"):
        render_email(email, connector_id=CONNECTOR, task_ref="t", default_from=None)


def test_chunk_key_ignores_member_order() -> None:
    assert chunk_key(["k1", "k2", "k3"]) == chunk_key(["k3", "k1", "k2"])
    assert chunk_key(["k1", "k2"]) != chunk_key(["k1", "k3"])


@pytest.mark.parametrize(("raw", "clean"), [("abc-123_X", "abc-123_X"), ("a:b/c", "a_b_c")])
def test_task_reference_is_a_valid_tag_value(raw: str, clean: str) -> None:
    assert task_reference(raw) == clean


def test_bare_address_strips_the_display_name() -> None:
    assert bare_address("Ann <ann@example.test>") == "ann@example.test"
