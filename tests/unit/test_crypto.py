"""Connector API keys: AES-GCM bound to the connector id, keys rotated by version."""

from __future__ import annotations

import uuid

import pytest

from shared.crypto import KeyRing, generate_key
from shared.errors import ConfigError, CryptoError
from shared.settings import load_settings


def ring(*keys: str) -> KeyRing:
    return KeyRing.from_settings(load_settings(pilot_encryption_keys=" ".join(keys)))


OLD, NEW = generate_key(), generate_key()
CONNECTOR = uuid.uuid4()


def test_encrypt_decrypt_round_trip() -> None:
    keyring = ring(NEW)
    sealed = keyring.encrypt("re_live_123", connector_id=CONNECTOR)

    assert keyring.decrypt(sealed.ciphertext, sealed.key_version, connector_id=CONNECTOR) == "re_live_123"


def test_ciphertext_is_randomized() -> None:
    keyring = ring(NEW)

    first = keyring.encrypt("same", connector_id=CONNECTOR)
    second = keyring.encrypt("same", connector_id=CONNECTOR)

    assert first.ciphertext != second.ciphertext


def test_ciphertext_copied_onto_another_connector_is_refused() -> None:
    keyring = ring(NEW)
    sealed = keyring.encrypt("re_live_123", connector_id=CONNECTOR)

    with pytest.raises(CryptoError, match="do not decrypt"):
        keyring.decrypt(sealed.ciphertext, sealed.key_version, connector_id=uuid.uuid4())


def test_tampered_ciphertext_is_refused() -> None:
    keyring = ring(NEW)
    sealed = keyring.encrypt("re_live_123", connector_id=CONNECTOR)
    tampered = sealed.ciphertext[:-1] + bytes([sealed.ciphertext[-1] ^ 1])

    with pytest.raises(CryptoError):
        keyring.decrypt(tampered, sealed.key_version, connector_id=CONNECTOR)


def test_rotation_old_then_new_old_then_new() -> None:
    sealed_by_old = ring(OLD).encrypt("re_key", connector_id=CONNECTOR)
    during = ring(NEW, OLD)

    assert (
        during.decrypt(sealed_by_old.ciphertext, sealed_by_old.key_version, connector_id=CONNECTOR)
        == "re_key"
    )
    assert during.needs_rotation(sealed_by_old.key_version)
    resealed = during.encrypt("re_key", connector_id=CONNECTOR)
    after = ring(NEW)
    assert after.decrypt(resealed.ciphertext, resealed.key_version, connector_id=CONNECTOR) == "re_key"
    with pytest.raises(CryptoError, match="not in PILOT_ENCRYPTION_KEYS"):
        after.decrypt(sealed_by_old.ciphertext, sealed_by_old.key_version, connector_id=CONNECTOR)


def test_relabelled_key_version_is_refused() -> None:
    keyring = ring(NEW, OLD)
    sealed = keyring.encrypt("re_key", connector_id=CONNECTOR)
    other_version = ring(OLD).current_version

    with pytest.raises(CryptoError):
        keyring.decrypt(sealed.ciphertext, other_version, connector_id=CONNECTOR)


def test_missing_keys_refuse_with_the_setting_named() -> None:
    with pytest.raises(ConfigError, match="PILOT_ENCRYPTION_KEYS"):
        ring()


@pytest.mark.parametrize(
    "bad", ["short", "!!!not-base64!!!", generate_key()[:-4]], ids=["short", "not-base64", "truncated"]
)
def test_malformed_key_refuses_to_start_naming_the_setting(bad: str) -> None:
    with pytest.raises(ConfigError, match="PILOT_ENCRYPTION_KEYS") as caught:
        load_settings(pilot_encryption_keys=bad)

    assert bad not in str(caught.value)


def test_reprs_show_no_key_material() -> None:
    key = NEW
    keyring = ring(key)
    sealed = keyring.encrypt("re_secret_value", connector_id=CONNECTOR)

    assert key not in repr(keyring)
    assert "re_secret_value" not in repr(sealed)
    assert sealed.ciphertext.hex() not in repr(sealed)
