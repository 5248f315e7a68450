"""Connector API keys encrypted at rest with AES-256-GCM.

The connector id and the key version are the associated data, so a ciphertext copied onto another
connector (or relabelled with another key version) fails to decrypt. Keys come from
``PILOT_ENCRYPTION_KEYS``: the first encrypts, every one decrypts. A key's version is a short
fingerprint of the key, so adding or reordering keys never confuses which key sealed a row.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.errors import ConfigError, CryptoError
from shared.settings import ENCRYPTION_KEY_BYTES, Settings

NONCE_BYTES = 12


@dataclass(frozen=True, repr=False)
class EncryptedSecret:
    """A ciphertext (nonce + sealed bytes) and the version of the key that sealed it."""

    ciphertext: bytes
    key_version: str

    def __repr__(self) -> str:
        return f"EncryptedSecret(key_version={self.key_version!r}, ciphertext=<{len(self.ciphertext)} bytes>)"


def generate_key() -> str:
    """A new random key, in the form ``PILOT_ENCRYPTION_KEYS`` takes."""
    return base64.urlsafe_b64encode(os.urandom(ENCRYPTION_KEY_BYTES)).decode("ascii")


def key_version(key: bytes) -> str:
    """The public fingerprint naming ``key`` (16 hex digits of an HMAC, not the key)."""
    return hmac.new(key, b"marketing-pilot key version", hashlib.sha256).hexdigest()[:16]


class KeyRing:
    """The configured encryption keys; the first one encrypts."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ConfigError("PILOT_ENCRYPTION_KEYS: at least one key is required to store connector keys")
        self._keys = {key_version(key): AESGCM(key) for key in keys}
        self.current_version = key_version(keys[0])

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """Build the ring from ``PILOT_ENCRYPTION_KEYS`` (validated by the settings)."""
        keys = [
            base64.urlsafe_b64decode(_pad(secret.get_secret_value()))
            for secret in settings.pilot_encryption_keys
        ]
        return cls(keys)

    def __repr__(self) -> str:
        return f"KeyRing(versions={list(self._keys)}, current={self.current_version!r})"

    def encrypt(self, plaintext: str, *, connector_id: uuid.UUID | str) -> EncryptedSecret:
        """Seal ``plaintext`` for ``connector_id`` under the current key."""
        nonce = os.urandom(NONCE_BYTES)
        aad = _associated_data(connector_id, self.current_version)
        sealed = self._keys[self.current_version].encrypt(nonce, plaintext.encode("utf-8"), aad)
        return EncryptedSecret(ciphertext=nonce + sealed, key_version=self.current_version)

    def decrypt(self, ciphertext: bytes, key_version: str, *, connector_id: uuid.UUID | str) -> str:
        """Open a ciphertext sealed for ``connector_id``, or raise :class:`CryptoError`."""
        aead = self._keys.get(key_version)
        if aead is None:
            raise CryptoError(
                f"connector {connector_id}: key version {key_version} is not in PILOT_ENCRYPTION_KEYS"
            )
        nonce, sealed = ciphertext[:NONCE_BYTES], ciphertext[NONCE_BYTES:]
        try:
            plain = aead.decrypt(nonce, sealed, _associated_data(connector_id, key_version))
        except InvalidTag:
            raise CryptoError(
                f"connector {connector_id}: credentials do not decrypt (tampered, swapped or wrong key)"
            ) from None
        return plain.decode("utf-8")

    def needs_rotation(self, key_version: str | None) -> bool:
        """True when a row sealed with ``key_version`` should be re-encrypted."""
        return key_version is not None and key_version != self.current_version


def _associated_data(connector_id: uuid.UUID | str, version: str) -> bytes:
    return f"marketing-pilot:connector:{connector_id}:{version}".encode("ascii")


def _pad(text: str) -> str:
    return text + "=" * (-len(text) % 4)
