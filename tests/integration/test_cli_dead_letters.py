"""`pilot dead-letters list / show` against the real PostgreSQL."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from kombu.message import Message
from sqlalchemy import select

from shared.db import make_engine, make_sessionmaker
from shared.models import DeadLetter, DeadLetterReason
from shared.settings import get_settings
from tests.integration.conftest import Pilot
from worker.broker.dead_letters import BODY_LIMIT, dead_letter_record
from worker.broker.message_check import Refusal
from worker.broker.tasks import store_dead_letter

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each table row on one line, as in an operator's terminal."""
    monkeypatch.setenv("COLUMNS", "200")


EARLY = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)


def dead_letter(
    body: bytes,
    *,
    task: str = "pilot.send_email",
    reason: DeadLetterReason = DeadLetterReason.MALFORMED,
    detail: str = "body: expected [args, kwargs, embed], got a string",
    received_at: datetime = EARLY,
) -> str:
    """Store a dead letter in the CLI's database (from its settings); returns the message id."""
    message_id = str(uuid.uuid4())
    msg = Message(body=body, content_type="application/json", headers={"task": task, "id": message_id})
    msg.delivery_info = {"exchange": "pilot.sends", "routing_key": "pilot.sends"}
    engine = make_engine(get_settings(), pool_size=1)
    try:
        record = dead_letter_record(msg, Refusal(reason, detail), received_at=received_at)
        store_dead_letter(make_sessionmaker(engine), record)
    finally:
        engine.dispose()
    return message_id


def row_id(message_id: str) -> str:
    """The dead letter's own id (what `pilot dead-letters list` shows first)."""
    engine = make_engine(get_settings(), pool_size=1)
    try:
        with make_sessionmaker(engine)() as session:
            return str(
                session.scalars(select(DeadLetter.id).where(DeadLetter.message_id == message_id)).one()
            )
    finally:
        engine.dispose()


def cells(line: str) -> list[str]:
    """The cells of a table row."""
    return [cell.strip() for cell in line.strip("│ ").split("│")]


def test_dead_letters_list_shows_each_with_queue_task_reason_and_size(pilot: Pilot) -> None:
    message_id = dead_letter(b'"just a string"', task="pilot.send_mail")

    result = pilot("dead-letters", "list")

    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if row_id(message_id) in line]
    assert cells(line) == [
        row_id(message_id),
        "2026-12-10 09:00:00",
        "pilot.sends",
        "pilot.send_mail",
        "malformed",
        "15 B",
    ]


def test_dead_letters_list_shows_the_newest_first_and_filters_by_reason(pilot: Pilot) -> None:
    old = dead_letter(b"1")
    new = dead_letter(b"2", reason=DeadLetterReason.UNKNOWN_TASK, received_at=EARLY + timedelta(hours=1))

    everything = pilot("dead-letters", "list").output
    unknown = pilot("dead-letters", "list", "--reason", "unknown_task").output

    assert everything.index(row_id(new)) < everything.index(row_id(old))
    assert row_id(new) in unknown and row_id(old) not in unknown


def test_dead_letters_list_says_when_there_are_none(pilot: Pilot) -> None:
    result = pilot("dead-letters", "list")

    assert (result.exit_code, result.output.strip()) == (0, "No dead letters.")


def test_dead_letters_show_prints_every_field_and_a_utf8_body_as_text(pilot: Pilot) -> None:
    message_id = dead_letter(b'[["ada@example.com"], {}, 5]')

    result = pilot("dead-letters", "show", row_id(message_id))

    assert result.exit_code == 0, result.output
    for part in (
        "reason:",
        "malformed",
        "queue:",
        "pilot.sends",
        f"message id:       {message_id}",
        "headers:",
    ):
        assert part in result.output
    assert 'body (UTF-8):\n[["ada@example.com"], {}, 5]' in result.output


def test_dead_letters_show_prints_a_body_that_is_not_utf8_as_base64(pilot: Pilot) -> None:
    body = b"\xff\xfe\x00"
    message_id = dead_letter(body)

    result = pilot("dead-letters", "show", row_id(message_id))

    assert f"body (base64, not UTF-8):\n{base64.b64encode(body).decode()}" in result.output


def test_dead_letters_show_says_how_much_of_a_long_body_was_kept(pilot: Pilot) -> None:
    message_id = dead_letter(b"x" * (BODY_LIMIT + 1))

    result = pilot("dead-letters", "show", row_id(message_id))

    assert f"{BODY_LIMIT + 1} bytes ({BODY_LIMIT} kept)" in result.output


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("not-a-uuid", "DEAD_LETTER_ID: expected the id column of `pilot dead-letters list`"),
        (
            "00000000-0000-0000-0000-000000000000",
            "no dead letter with id 00000000-0000-0000-0000-000000000000",
        ),
    ],
)
def test_dead_letters_show_refuses_an_unknown_id_in_one_line(pilot: Pilot, given: str, message: str) -> None:
    result = pilot("dead-letters", "show", given)

    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {message}"
