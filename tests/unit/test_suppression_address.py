"""The suppression-address rule: what operators may put on the list, and what webhooks store."""

from __future__ import annotations

import pytest

from shared.errors import PayloadInvalid
from shared.suppression import suppression_address


def operator_refusal(value: str) -> str:
    with pytest.raises(PayloadInvalid) as caught:
        suppression_address(value, operator_input=True)
    return str(caught.value)


def test_suppression_address_is_trimmed_and_lower_cased() -> None:
    assert (
        suppression_address("  Ada.Lovelace@Example.COM ", operator_input=True) == "ada.lovelace@example.com"
    )


@pytest.mark.parametrize("address", ["bounced+demo1@resend.dev", "ada@acme.test", "o'brien@example.com"])
def test_suppression_address_accepts_a_valid_operator_address(address: str) -> None:
    assert suppression_address(address, operator_input=True) == address.lower()


@pytest.mark.parametrize("value", ["m1@example.com, m2@example.com", "m1@example.com;m2@example.com",
                                   "m1@example.com m2@example.com"])  # fmt: skip
def test_suppression_address_refuses_two_addresses_in_one_value(value: str) -> None:
    assert "more than one address" in operator_refusal(value)


def test_suppression_address_refuses_a_display_name() -> None:
    assert "without a display name" in operator_refusal("Ada <ada@example.com>")


def test_suppression_address_refuses_a_comment() -> None:
    assert "comments" in operator_refusal("ada(home)@example.com")


@pytest.mark.parametrize("value", ["ada\x00@example.com", "ada@example.com\x1b[2J", "\tada@example.com",
                                   "ada@example.com\r", "ada\x85@example.com"])  # fmt: skip
def test_suppression_address_refuses_control_characters(value: str) -> None:
    assert "control character" in operator_refusal(value)


@pytest.mark.parametrize(
    "value",
    [
        "=cmd|'/Ccalc'!A0@example.com",
        '=HYPERLINK("http://evil.example")@example.com',
        "+1-2@example.com",
        "-2+3@example.com",
        "@SUM(1)@example.com",
    ],
)
def test_suppression_address_refuses_formula_like_operator_input(value: str) -> None:
    assert "formula" in operator_refusal(value)


def test_suppression_address_accepts_a_formula_like_address_written_as_text() -> None:
    assert suppression_address("'+1-2@example.com", operator_input=True) == "+1-2@example.com"


def test_suppression_address_keeps_a_leading_quote_before_ordinary_text() -> None:
    assert suppression_address("'ada@example.com", operator_input=True) == "'ada@example.com"


@pytest.mark.parametrize("value", ["not-an-address", "a@b@c", "ada@", "ada..b@example.com", ""])
def test_suppression_address_refuses_what_is_not_an_address(value: str) -> None:
    operator_refusal(value)


@pytest.mark.parametrize("address", ["+1-2@example.com", "ops@localhost", "Former.Reader1@Example.com"])
def test_suppression_address_stores_any_address_the_send_path_sent_to(address: str) -> None:
    assert suppression_address(address) == address.lower()


@pytest.mark.parametrize("value", ["ada\x00@example.com", "  "])
def test_suppression_address_refuses_an_empty_or_control_character_address_from_any_source(
    value: str,
) -> None:
    with pytest.raises(PayloadInvalid):
        suppression_address(value)
