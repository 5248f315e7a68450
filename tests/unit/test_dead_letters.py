"""worker.broker.dead_letters: a refused message becomes a bounded, JSON-safe record of all it carried."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from kombu.message import Message

from shared.errors import PayloadInvalid
from shared.models import DeadLetterReason
from worker.broker.dead_letters import (
    BODY_LIMIT,
    HEADER_STRING_LIMIT,
    HEADER_VALUE_BUDGET,
    NAME_LIMIT,
    DeadLetterRecord,
    dead_letter_record,
    json_safe,
)
from worker.broker.message_check import Refusal
from worker.broker.tasks import parse_record

NOW = datetime(2026, 12, 10, 9, 30, tzinfo=UTC)
REFUSAL = Refusal(DeadLetterReason.MALFORMED, "body: expected [args, kwargs, embed], got a string")


def message(body: Any, headers: Any, content_type: str | None = "application/json") -> Message:
    msg = Message(
        body=body,
        content_type=content_type,
        content_encoding="utf-8",
        headers={},
        delivery_info={"exchange": "pilot.sends", "routing_key": "pilot.sends"},
    )
    msg.headers = headers
    msg.accept = {"application/json"}
    return msg


def record_of(msg: Message) -> DeadLetterRecord:
    return dead_letter_record(msg, REFUSAL, received_at=NOW)


def test_dead_letter_record_keeps_reason_identity_queue_and_body() -> None:
    body = b'"just a string"'

    record = record_of(message(body, {"task": "pilot.send_email", "id": "m-1"}))

    assert (record.reason, record.detail, record.task_name, record.message_id) == (
        DeadLetterReason.MALFORMED,
        REFUSAL.detail,
        "pilot.send_email",
        "m-1",
    )
    assert (record.queue, record.exchange, record.content_type) == (
        "pilot.sends",
        "pilot.sends",
        "application/json",
    )
    assert (record.body, record.body_size, record.body_sha256) == (
        body,
        len(body),
        hashlib.sha256(body).hexdigest(),
    )


def test_dead_letter_record_caps_the_body_and_describes_the_whole() -> None:
    body = b"x" * (BODY_LIMIT + 10)

    record = record_of(message(body, {"task": "pilot.send_email", "id": "m-1"}))

    assert len(record.body) == BODY_LIMIT
    assert (record.body_size, record.body_sha256) == (BODY_LIMIT + 10, hashlib.sha256(body).hexdigest())


def test_dead_letter_record_reads_the_identity_of_a_protocol_1_body() -> None:
    body = json.dumps({"task": "pilot.sweep", "id": "m-2", "args": "x"}).encode()

    record = record_of(message(body, {}))

    assert (record.task_name, record.message_id) == ("pilot.sweep", "m-2")


def test_dead_letter_record_never_decodes_a_body_that_is_not_json() -> None:
    record = record_of(message(b"\x80\x04K\x05.", {}, "application/x-python-serialize"))

    assert (record.task_name, record.message_id, record.body) == (None, None, b"\x80\x04K\x05.")


def test_dead_letter_record_keeps_headers_that_are_not_a_mapping() -> None:
    record = record_of(message(b"[]", ["pilot.send_email", 5]))

    assert (record.headers, record.task_name) == (["pilot.send_email", 5], None)


def test_dead_letter_record_gives_a_non_string_id_as_json_and_cuts_long_names() -> None:
    record = record_of(message(b"[]", {"task": "t" * (NAME_LIMIT + 50), "id": [1, 2]}))

    assert record.message_id == "[1, 2]"
    assert record.task_name == "t" * NAME_LIMIT + "..."


def test_dead_letter_record_cleans_control_characters_from_names() -> None:
    record = record_of(message(b"[]", {"task": "pilot.send\nWARNING forged", "id": "a\x00b"}))

    assert (record.task_name, record.message_id) == ("pilot.send?WARNING forged", "a?b")


def test_dead_letter_record_takes_a_text_body_as_utf8() -> None:
    record = record_of(message("[[], {}, 5]", {"task": "pilot.send_email", "id": "m-3"}))

    assert record.body == b"[[], {}, 5]"


def test_dead_letter_record_is_json_through_its_task_kwargs() -> None:
    record = record_of(message(b"\xff\xfe", {"task": "pilot.send_email", "id": "m-4", "eta": float("nan")}))

    again = DeadLetterRecord.model_validate(json.loads(json.dumps(record.model_dump(mode="json"))))

    assert again == record and again.body == b"\xff\xfe"


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (2**70, str(2**70)),
        ("a\x00b", "a\ufffdb"),
        ("\ud800x", "?x"),
        ({"k": (1, None, True)}, {"k": [1, None, True]}),
        (b"raw", "(bytes)"),
    ],
)
def test_json_safe_makes_a_value_storable_in_postgresql_jsonb(value: Any, safe: Any) -> None:
    assert json_safe(value) == safe


def test_json_safe_cuts_long_strings() -> None:
    assert json_safe("x" * (HEADER_STRING_LIMIT + 1)) == "x" * HEADER_STRING_LIMIT + "..."


def test_json_safe_keeps_a_bounded_number_of_values() -> None:
    safe = json_safe({"many": list(range(HEADER_VALUE_BUDGET * 10))})

    assert isinstance(safe, dict) and isinstance(safe["many"], list)
    assert len(safe["many"]) < HEADER_VALUE_BUDGET


def test_json_safe_stops_at_a_depth() -> None:
    nested: Any = "leaf"
    for _ in range(50):
        nested = [nested]

    assert "(nested too deep)" in json.dumps(json_safe(nested))


def test_dead_letter_record_refuses_a_body_that_is_not_base64() -> None:
    fields = record_of(message(b"[]", {})).model_dump(mode="json") | {"body_base64": "not base64!"}

    with pytest.raises(ValueError, match="body_base64"):
        DeadLetterRecord.model_validate(fields)


def test_dead_letter_record_body_base64_round_trips() -> None:
    record = record_of(message(b"\x00\x01", {}))

    assert base64.b64decode(record.body_base64) == b"\x00\x01"


def test_parse_record_names_wrong_fields_but_not_their_values() -> None:
    fields = record_of(message(b"5", {})).model_dump(mode="json") | {
        "reason": "ada@example.com",
        "body_size": "x",
    }

    with pytest.raises(PayloadInvalid) as refused:
        parse_record(fields)

    assert "reason" in str(refused.value) and "body_size" in str(refused.value)
    assert "ada@example.com" not in str(refused.value)
