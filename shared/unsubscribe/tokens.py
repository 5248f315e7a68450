"""Unsubscribe and undo tokens: AES-SIV over a small record, base64url, opened without a lookup.

Deterministic (an email rendered again carries the same link), encrypted (no address in a URL),
authenticated (any changed byte is refused); each kind has its own associated data. Keys come from
``PILOT_UNSUBSCRIBE_KEYS``: the first seals, all open. Design: docs/architecture.md, "One-click
unsubscribe".
"""

from __future__ import annotations

import base64
import binascii
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from shared.errors import ConfigError, TokenInvalid
from shared.settings import UNSUBSCRIBE_KEY_BYTES, Settings

_UNSUBSCRIBE_AD = b"marketing-pilot unsubscribe v1"
_RESUBSCRIBE_AD = b"marketing-pilot resubscribe v1"
#: Longest token text looked at; anything longer is refused before any decoding.
MAX_TOKEN_CHARS = 1024
_UUID_BYTES = 16
_TIME_BYTES = 8


def generate_unsubscribe_key() -> str:
    """A new random key, in the form ``PILOT_UNSUBSCRIBE_KEYS`` takes."""
    return base64.urlsafe_b64encode(os.urandom(UNSUBSCRIBE_KEY_BYTES)).decode("ascii")


@dataclass(frozen=True)
class UnsubscribeToken:
    """What the link of one email names: its organization, its ledger row id, its recipient (the
    bare address, lower-cased) and its topic (None: the email has none)."""

    organization_id: uuid.UUID
    message_id: uuid.UUID
    email: str
    topic: str | None

    def __repr__(self) -> str:
        return f"UnsubscribeToken(organization_id={self.organization_id}, message_id={self.message_id})"


@dataclass(frozen=True)
class ResubscribeToken:
    """An undo link: the entry to remove (organization, address, topic; '' is everything) and when
    it was issued (it works for a while only)."""

    organization_id: uuid.UUID
    email: str
    topic: str
    issued_at: datetime

    def __repr__(self) -> str:
        return f"ResubscribeToken(organization_id={self.organization_id}, topic={self.topic!r})"


class TokenSealer:
    """Seals and opens tokens with the configured keys (the first seals, all open)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ConfigError("PILOT_UNSUBSCRIBE_KEYS: at least one key is required for unsubscribe links")
        if any(len(key) != UNSUBSCRIBE_KEY_BYTES for key in keys):
            raise ConfigError(f"PILOT_UNSUBSCRIBE_KEYS: each key must be {UNSUBSCRIBE_KEY_BYTES} bytes")
        self._ciphers = [AESSIV(key) for key in keys]

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenSealer:
        """The sealer of ``PILOT_UNSUBSCRIBE_KEYS`` (validated by the settings)."""
        keys = [_b64decode(secret.get_secret_value()) for secret in settings.pilot_unsubscribe_keys]
        return cls(keys)

    def __repr__(self) -> str:
        return f"TokenSealer(keys={len(self._ciphers)})"

    def seal_unsubscribe(self, token: UnsubscribeToken) -> str:
        """The token text of ``token``."""
        record = token.organization_id.bytes + token.message_id.bytes + _tail(token.topic or "", token.email)
        return _b64encode(self._ciphers[0].encrypt(record, [_UNSUBSCRIBE_AD]))

    def open_unsubscribe(self, text: str) -> UnsubscribeToken:
        """The token sealed as ``text``, or :class:`TokenInvalid`."""
        record = self._open(text, _UNSUBSCRIBE_AD)
        organization, message = _uuid(record, 0), _uuid(record, _UUID_BYTES)
        topic, email = _split_tail(record[2 * _UUID_BYTES :])
        return UnsubscribeToken(organization, message, email, topic or None)

    def seal_resubscribe(self, token: ResubscribeToken) -> str:
        """The token text of ``token`` (its time kept to the second)."""
        issued = int(token.issued_at.timestamp()).to_bytes(_TIME_BYTES, "big")
        record = token.organization_id.bytes + issued + _tail(token.topic, token.email)
        return _b64encode(self._ciphers[0].encrypt(record, [_RESUBSCRIBE_AD]))

    def open_resubscribe(self, text: str, *, now: datetime, max_age_s: float) -> ResubscribeToken:
        """The token sealed as ``text`` if issued less than ``max_age_s`` seconds before ``now``, or
        :class:`TokenInvalid`."""
        record = self._open(text, _RESUBSCRIBE_AD)
        organization = _uuid(record, 0)
        seconds = int.from_bytes(record[_UUID_BYTES : _UUID_BYTES + _TIME_BYTES], "big")
        issued = datetime.fromtimestamp(seconds, UTC)
        if not 0 <= (now - issued).total_seconds() <= max_age_s:
            raise TokenInvalid()
        topic, email = _split_tail(record[_UUID_BYTES + _TIME_BYTES :])
        return ResubscribeToken(organization, email, topic, issued)

    def _open(self, text: str, associated: bytes) -> bytes:
        sealed = _strict_b64decode(text)
        for cipher in self._ciphers:
            try:
                return cipher.decrypt(sealed, [associated])
            except InvalidTag:
                continue
        raise TokenInvalid()


def _tail(topic: str, email: str) -> bytes:
    encoded = topic.encode("ascii")
    return len(encoded).to_bytes(1, "big") + encoded + email.encode("utf-8")


def _split_tail(tail: bytes) -> tuple[str, str]:
    # Only a record we sealed gets here (SIV authenticated it), so its layout holds.
    size = tail[0]
    return tail[1 : 1 + size].decode("ascii"), tail[1 + size :].decode("utf-8")


def _uuid(record: bytes, at: int) -> uuid.UUID:
    return uuid.UUID(bytes=record[at : at + _UUID_BYTES])


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _strict_b64decode(text: str) -> bytes:
    """The bytes of ``text`` if it is exactly how :func:`_b64encode` writes them: another spelling of
    the same bytes (unused low bits set, padding, other alphabets) is refused too."""
    if not text or len(text) > MAX_TOKEN_CHARS or not text.isascii():
        raise TokenInvalid()
    try:
        data = _b64decode(text)
    except (binascii.Error, ValueError):
        raise TokenInvalid() from None
    if _b64encode(data) != text:
        raise TokenInvalid()
    return data
