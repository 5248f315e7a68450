"""Unsubscribe and undo tokens: they round-trip, rotate, refuse any change and hide the address."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import ConfigError, TokenInvalid
from shared.unsubscribe.tokens import (
    ResubscribeToken,
    TokenSealer,
    UnsubscribeToken,
    generate_unsubscribe_key,
)
from tests.unsubscribe_helpers import a_token


def sealer(*keys: str) -> TokenSealer:
    return TokenSealer([base64.urlsafe_b64decode(key) for key in keys])


KEY_OLD = generate_unsubscribe_key()
KEY_NEW = generate_unsubscribe_key()


def test_a_token_opens_to_what_was_sealed() -> None:
    token = a_token()
    keys = sealer(KEY_OLD)

    assert keys.open_unsubscribe(keys.seal_unsubscribe(token)) == token


def test_a_token_without_a_topic_opens_without_one() -> None:
    token = a_token(topic=None)
    keys = sealer(KEY_OLD)

    assert keys.open_unsubscribe(keys.seal_unsubscribe(token)).topic is None


def test_a_non_ascii_address_round_trips() -> None:
    token = a_token(email="zoë@exämple.test")
    keys = sealer(KEY_OLD)

    assert keys.open_unsubscribe(keys.seal_unsubscribe(token)).email == "zoë@exämple.test"


def test_sealing_is_deterministic_so_a_rendered_email_is_the_same_bytes_again() -> None:
    token = a_token()

    assert sealer(KEY_OLD).seal_unsubscribe(token) == sealer(KEY_OLD).seal_unsubscribe(token)


def test_the_token_is_url_safe() -> None:
    text = sealer(KEY_OLD).seal_unsubscribe(a_token())

    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_a_token_sealed_with_an_older_key_still_opens_after_rotation() -> None:
    token = a_token()
    old = sealer(KEY_OLD).seal_unsubscribe(token)

    assert sealer(KEY_NEW, KEY_OLD).open_unsubscribe(old) == token


def test_after_rotation_the_first_key_seals() -> None:
    token = a_token()
    text = sealer(KEY_NEW, KEY_OLD).seal_unsubscribe(token)

    assert sealer(KEY_NEW).open_unsubscribe(text) == token
    with pytest.raises(TokenInvalid):
        sealer(KEY_OLD).open_unsubscribe(text)


def test_a_token_of_a_removed_key_no_longer_opens() -> None:
    text = sealer(KEY_OLD).seal_unsubscribe(a_token())

    with pytest.raises(TokenInvalid):
        sealer(KEY_NEW).open_unsubscribe(text)


def test_every_single_character_change_is_refused() -> None:
    keys = sealer(KEY_OLD)
    text = keys.seal_unsubscribe(a_token())
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

    for position, original in enumerate(text):
        for replacement in alphabet:
            if replacement == original:
                continue
            changed = text[:position] + replacement + text[position + 1 :]
            with pytest.raises(TokenInvalid):
                keys.open_unsubscribe(changed)


def test_every_single_byte_change_of_the_sealed_bytes_is_refused() -> None:
    keys = sealer(KEY_OLD)
    sealed = base64.urlsafe_b64decode(keys.seal_unsubscribe(a_token()) + "==")

    for position in range(len(sealed)):
        for flip in (0x01, 0x80, 0xFF):
            changed = bytearray(sealed)
            changed[position] ^= flip
            text = base64.urlsafe_b64encode(bytes(changed)).rstrip(b"=").decode()
            with pytest.raises(TokenInvalid):
                keys.open_unsubscribe(text)


@pytest.mark.parametrize(
    "text",
    ["", "a", "not a token", "%00", "ä" * 30, "A" * 5000, "AAAA====", "/" * 40, "+" * 40],
)
def test_garbage_is_refused_without_saying_why(text: str) -> None:
    with pytest.raises(TokenInvalid) as refused:
        sealer(KEY_OLD).open_unsubscribe(text)

    assert str(refused.value) == "invalid or expired link"


def test_truncated_and_extended_tokens_are_refused() -> None:
    keys = sealer(KEY_OLD)
    text = keys.seal_unsubscribe(a_token())

    for changed in (text[:-1], text[1:], text + "A", "A" + text, text + "=="):
        with pytest.raises(TokenInvalid):
            keys.open_unsubscribe(changed)


def test_the_token_does_not_reveal_the_address() -> None:
    email = "ada.lovelace@example.test"
    text = sealer(KEY_OLD).seal_unsubscribe(a_token(email=email))
    raw = base64.urlsafe_b64decode(text + "==")

    for needle in (email, "ada.lovelace", "example.test"):
        assert needle not in text
        assert needle.encode() not in raw
        for shift in range(3):  # the address base64-encoded at any alignment
            encoded = base64.urlsafe_b64encode(b"x" * shift + needle.encode()).decode()[4:-4]
            assert encoded not in text


def test_tokens_of_two_recipients_share_no_visible_structure() -> None:
    keys = sealer(KEY_OLD)
    organization = a_token().organization_id
    first = keys.seal_unsubscribe(a_token(organization_id=organization, email="a@example.test"))
    second = keys.seal_unsubscribe(a_token(organization_id=organization, email="b@example.test"))

    assert first[:8] != second[:8]


def test_an_undo_token_is_not_an_unsubscribe_token_nor_the_reverse() -> None:
    keys = sealer(KEY_OLD)
    now = datetime.now(UTC)
    undo = keys.seal_resubscribe(ResubscribeToken(a_token().organization_id, "ada@example.test", "", now))
    unsubscribe = keys.seal_unsubscribe(a_token())

    with pytest.raises(TokenInvalid):
        keys.open_unsubscribe(undo)
    with pytest.raises(TokenInvalid):
        keys.open_resubscribe(unsubscribe, now=now, max_age_s=60)


def test_an_undo_token_opens_while_it_is_valid() -> None:
    keys = sealer(KEY_OLD)
    issued = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    token = ResubscribeToken(a_token().organization_id, "ada@example.test", "newsletter", issued)
    text = keys.seal_resubscribe(token)

    assert keys.open_resubscribe(text, now=issued + timedelta(days=6), max_age_s=7 * 86400) == token


def test_an_undo_token_past_its_age_is_refused() -> None:
    keys = sealer(KEY_OLD)
    issued = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    text = keys.seal_resubscribe(ResubscribeToken(a_token().organization_id, "ada@example.test", "", issued))

    with pytest.raises(TokenInvalid):
        keys.open_resubscribe(text, now=issued + timedelta(days=8), max_age_s=7 * 86400)


def test_reprs_name_no_address() -> None:
    token = a_token(email="secret.person@example.test")

    assert "secret.person" not in repr(token)
    assert "secret.person" not in repr(
        ResubscribeToken(token.organization_id, token.email, "", datetime.now(UTC))
    )


def test_a_sealer_needs_a_key() -> None:
    with pytest.raises(ConfigError, match="PILOT_UNSUBSCRIBE_KEYS"):
        TokenSealer([])


def test_a_token_names_the_organization_and_the_email_row() -> None:
    token = UnsubscribeToken(a_token().organization_id, a_token().message_id, "ada@example.test", None)
    keys = sealer(KEY_OLD)

    opened = keys.open_unsubscribe(keys.seal_unsubscribe(token))

    assert (opened.organization_id, opened.message_id) == (token.organization_id, token.message_id)
