"""shared.addresses: one mailbox per value, display names, and the mailbox identity."""

from __future__ import annotations

import pytest

from shared.addresses import (
    Mailbox,
    bare_address,
    check_address,
    check_bare_address,
    mailbox_key,
    parse_mailbox,
)


@pytest.mark.parametrize(
    ("value", "mailbox"),
    [
        ("ann@example.test", Mailbox(None, "ann@example.test")),
        ("Ann <ann@example.test>", Mailbox("Ann", "ann@example.test")),
        ('"Doe, John" <j@example.com>', Mailbox('"Doe, John"', "j@example.com")),
        ("John Q. Public <jqp@example.com>", Mailbox("John Q. Public", "jqp@example.com")),
        ("Café Müller <news@cafe.example>", Mailbox("Café Müller", "news@cafe.example")),
        ("<bare@example.com>", Mailbox(None, "bare@example.com")),
        ("delivered@resend.dev", Mailbox(None, "delivered@resend.dev")),
        ("a+tag@sub.example.co.uk", Mailbox(None, "a+tag@sub.example.co.uk")),
    ],
)
def test_parse_mailbox_accepts_one_mailbox(value: str, mailbox: Mailbox) -> None:
    assert parse_mailbox(value) == mailbox


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("a@example.com, b@example.com", "must be one address"),
        ("Name <a@example.com>, b@example.com", "must be one address"),
        ("a@example.com (comment)", "must be one address"),
        ("victim@example.com (x) <ok@example.com>", "display name holding"),
        ("Doe, John <j@example.com>", "display name holding"),
        ("Evil <a@example.com>\r\nBcc: x@evil.example", "line breaks"),
        ("a\x00@example.com", "control characters"),
        ("a\x1b[31m@example.com", "control characters"),
        ("a\ud800@example.com", "lone surrogates"),
        ("not-an-address", "must be one address"),
        ("a..b@example.com", "must be one address"),
        ("a@localhost", "must be one address"),
        ("group: a@example.com;", "must be one address"),
        ("<>", "must be one address"),
        ("", "must be one address"),
    ],
)
def test_parse_mailbox_refuses_anything_but_one_mailbox(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as refused:
        parse_mailbox(value)

    assert value.strip() not in str(refused.value) or not value.strip()


def test_check_address_returns_the_value_as_written() -> None:
    assert check_address("Ann <Ann@Example.TEST>") == "Ann <Ann@Example.TEST>"


def test_check_bare_address_refuses_a_display_name() -> None:
    with pytest.raises(ValueError, match="no display name"):
        check_bare_address("Ann <ann@example.test>")


def test_mailbox_key_is_the_bare_address_in_lower_case() -> None:
    assert mailbox_key("Ann <Ann@Example.TEST>") == mailbox_key(" ann@example.test ") == "ann@example.test"


def test_bare_address_of_a_refused_value_is_the_value_trimmed() -> None:
    assert bare_address(" a@x.com, b@y.com ") == "a@x.com, b@y.com"
