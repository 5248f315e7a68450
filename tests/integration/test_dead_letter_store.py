"""pilot.record_dead_letter against the real PostgreSQL: one row per refused message, whatever it held."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from kombu.message import Message
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.models import DeadLetter, DeadLetterReason
from worker.broker.dead_letters import DeadLetterRecord, dead_letter_record
from worker.broker.message_check import Refusal
from worker.broker.tasks import store_dead_letter

pytestmark = pytest.mark.integration

REFUSAL = Refusal(DeadLetterReason.MALFORMED, "body: expected [args, kwargs, embed], got a number")


def record(body: bytes, headers: Any) -> DeadLetterRecord:
    msg = Message(body=body, content_type="application/json", content_encoding="utf-8", headers={})
    msg.headers = headers
    msg.delivery_info = {"exchange": "pilot.sends", "routing_key": "pilot.sends"}
    return dead_letter_record(msg, REFUSAL, received_at=datetime.now(UTC))


def rows(session_factory: sessionmaker[Session]) -> list[DeadLetter]:
    with session_factory() as session:
        return list(session.scalars(select(DeadLetter)))


def test_store_dead_letter_writes_every_field(session_factory: sessionmaker[Session]) -> None:
    given = record(b"\xff5", {"task": "pilot.send_email", "id": "m-1", "eta": float("nan"), "x": "a\x00b"})

    assert store_dead_letter(session_factory, given) is True

    [row] = rows(session_factory)
    assert (row.reason, row.detail, row.task_name, row.message_id, row.queue) == (
        "malformed",
        REFUSAL.detail,
        "pilot.send_email",
        "m-1",
        "pilot.sends",
    )
    assert (row.body, row.body_size, row.body_sha256) == (b"\xff5", 2, given.body_sha256)
    assert row.headers == {"task": "pilot.send_email", "id": "m-1", "eta": "nan", "x": "a\ufffdb"}


def test_store_dead_letter_records_a_redelivered_message_once(session_factory: sessionmaker[Session]) -> None:
    given = record(b"5", {"task": "pilot.send_email", "id": "m-2"})

    first, again = store_dead_letter(session_factory, given), store_dead_letter(session_factory, given)

    assert (first, again, len(rows(session_factory))) == (True, False, 1)


def test_store_dead_letter_records_a_message_without_id_once(session_factory: sessionmaker[Session]) -> None:
    given = record(b"[[], {}, {}]", {})

    store_dead_letter(session_factory, given)
    store_dead_letter(session_factory, given)

    assert [row.message_id for row in rows(session_factory)] == [None]


def test_store_dead_letter_keeps_two_messages_with_one_id_and_different_bodies(
    session_factory: sessionmaker[Session],
) -> None:
    store_dead_letter(session_factory, record(b"5", {"task": "t", "id": "m-3"}))
    store_dead_letter(session_factory, record(b"6", {"task": "t", "id": "m-3"}))

    assert len(rows(session_factory)) == 2


def test_store_dead_letter_keeps_headers_that_are_not_a_mapping(
    session_factory: sessionmaker[Session],
) -> None:
    store_dead_letter(session_factory, record(b"[]", ["pilot.send_email", 1]))

    assert [row.headers for row in rows(session_factory)] == [["pilot.send_email", 1]]
