"""PILOT_PUBLIC_URL and PILOT_UNSUBSCRIBE_KEYS: what is accepted, and refusals naming the variable."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.settings import load_settings
from shared.unsubscribe.links import UnsubscribeLinks
from shared.unsubscribe.tokens import generate_unsubscribe_key


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://mail.example.com", "https://mail.example.com"),
        ("https://mail.example.com/", "https://mail.example.com"),
        ("https://example.com/pilot/", "https://example.com/pilot"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://localhost:8000", "http://localhost:8000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_public_url_accepts_https_and_http_on_loopback(given: str, stored: str) -> None:
    assert load_settings(pilot_public_url=given).pilot_public_url == stored


@pytest.mark.parametrize(
    "given",
    [
        "http://mail.example.com",
        "http://10.0.0.5:8000",
        "ftp://mail.example.com",
        "mail.example.com",
        "https://",
        "https://mail.example.com/?next=1",
        "https://mail.example.com/#top",
        "https://user:pw@mail.example.com",
    ],
)
def test_public_url_refuses_anything_else_naming_the_variable(given: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(pilot_public_url=given)

    assert "PILOT_PUBLIC_URL" in str(refused.value)


def test_public_url_refusal_of_plain_http_says_https_is_needed() -> None:
    with pytest.raises(ConfigError, match="https://"):
        load_settings(pilot_public_url="http://mail.example.com")


def test_unsubscribe_keys_are_space_separated() -> None:
    keys = f"{generate_unsubscribe_key()} {generate_unsubscribe_key()}"

    assert len(load_settings(pilot_unsubscribe_keys=keys).pilot_unsubscribe_keys) == 2


def test_an_unsubscribe_key_of_the_wrong_size_is_refused_naming_the_variable_never_the_value() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(pilot_unsubscribe_keys="c2hvcnQta2V5")

    assert "PILOT_UNSUBSCRIBE_KEYS" in str(refused.value)
    assert "key #1" in str(refused.value)
    assert "c2hvcnQta2V5" not in str(refused.value)


def test_unsubscribe_keys_are_masked_in_the_settings_repr() -> None:
    key = generate_unsubscribe_key()

    assert key not in repr(load_settings(pilot_unsubscribe_keys=key))


def test_links_need_both_the_public_url_and_a_key() -> None:
    key = generate_unsubscribe_key()

    assert UnsubscribeLinks.from_settings(load_settings(pilot_unsubscribe_keys=key)) is None
    assert UnsubscribeLinks.from_settings(load_settings(pilot_public_url="https://m.example.com")) is None
    assert (
        UnsubscribeLinks.from_settings(
            load_settings(pilot_public_url="https://m.example.com", pilot_unsubscribe_keys=key)
        )
        is not None
    )
