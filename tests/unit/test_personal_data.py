"""Recipient addresses are personal data: masked in every log record above DEBUG, whole at DEBUG."""

from __future__ import annotations

import logging
import sys

import pytest

from shared.addresses import mask_address, mask_addresses
from shared.logs import PersonalDataFilter


def record(level: int, message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("celery.app.trace", level, __file__, 1, message, args, None)


def test_an_address_keeps_its_first_character_and_its_domain() -> None:
    assert mask_address("ada@example.com") == "a***@example.com"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("sent to ada@example.com.", "sent to a***@example.com."),
        ("{'recipient': 'ada@example.com'}", "{'recipient': 'a***@example.com'}"),
        ("Ada <ada.lovelace+news@mail.example.co.uk>", "Ada <a***@mail.example.co.uk>"),
        ("to ['a@x.io', 'b@y.io']", "to ['a***@x.io', 'b***@y.io']"),
        ("café@exämple.de", "c***@exämple.de"),
    ],
)
def test_every_address_in_a_text_is_masked(text: str, masked: str) -> None:
    assert mask_addresses(text) == masked


def test_a_text_without_addresses_is_left_as_it_is() -> None:
    assert mask_addresses("message 7e46e9b2 sent in 0.1 s") == "message 7e46e9b2 sent in 0.1 s"


@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING, logging.ERROR])
def test_records_above_debug_have_addresses_masked_in_message_and_arguments(level: int) -> None:
    entry = record(level, "Task succeeded: %r", {"recipient": "ada@example.com"})

    PersonalDataFilter().filter(entry)

    assert entry.getMessage() == "Task succeeded: {'recipient': 'a***@example.com'}"


def test_debug_records_keep_addresses_whole() -> None:
    entry = record(logging.DEBUG, "rendering for %s", "ada@example.com")

    PersonalDataFilter().filter(entry)

    assert entry.getMessage() == "rendering for ada@example.com"


def test_a_logged_exception_has_its_addresses_masked() -> None:
    try:
        raise ValueError("ada@example.com refused")
    except ValueError:
        entry = logging.LogRecord("worker", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())

    PersonalDataFilter().filter(entry)

    assert "ada@example.com" not in (entry.exc_text or "")
    assert "a***@example.com refused" in (entry.exc_text or "")
