"""Svix / Standard Webhooks symmetric (``v1``) signatures: the sandbox signs, the receiver verifies.

Written here rather than wrapped around ``standardwebhooks``, so that every request-borne problem
raises :class:`~shared.errors.WebhookVerificationError` with a short ``reason`` (a 400), and only a
misconfigured secret raises ``ValueError``. The scheme and the why: docs/architecture.md, "Webhooks".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence

from shared.errors import WebhookVerificationError

#: Standard Webhooks: a symmetric secret is 24 to 64 random bytes.
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
#: Libraries reject timestamps more than five minutes away from now, in both directions.
DEFAULT_TOLERANCE_SECONDS = 300
SECRET_PREFIX = "whsec_"
HEADER_PREFIXES = ("svix", "webhook")

# Integer unix seconds only: no sign, fraction, exponent, ms or Unicode digits.
_TIMESTAMP = re.compile(r"[0-9]{1,10}")
# Svix ids are `msg_…`; printable ASCII without spaces keeps the signed content unambiguous.
_MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,256}")


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret (prefix optional, padding optional, strict base64).

    Raises ``ValueError`` naming the problem (never the value) unless it decodes to 24-64 bytes.
    """
    text = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode((text + "=" * (-len(text) % 4)).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("webhook secret is not valid base64 (after an optional whsec_ prefix)") from None
    return _checked_key(key)


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of ``body`` sent as ``msg_id`` at ``timestamp`` (unix seconds)."""
    return "v1," + base64.b64encode(_digest(_key(secret), msg_id, str(timestamp), body)).decode("ascii")


def signature_headers(
    secret: str | bytes,
    msg_id: str,
    body: bytes,
    *,
    timestamp: int | None = None,
    prefix: str = "svix",
) -> dict[str, str]:
    """The three ``{prefix}-id/-timestamp/-signature`` headers signing ``body`` (timestamp: now)."""
    if prefix not in HEADER_PREFIXES:
        raise ValueError(f"header prefix must be one of {HEADER_PREFIXES}")
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        f"{prefix}-id": msg_id,
        f"{prefix}-timestamp": str(ts),
        f"{prefix}-signature": sign(secret, msg_id, ts, body),
    }


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str | bytes],
    *,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> str:
    """Check the signature of a webhook request and return its message id (``svix-id``).

    ``body`` is the raw request body. ``headers`` is looked up case-insensitively, ``svix-*`` first,
    else ``webhook-*``. Any of ``secrets`` (rotation) may match any ``v1`` entry of the signature
    header. Raises :class:`WebhookVerificationError`; ``ValueError`` only for a bad configured secret.
    """
    keys = [_key(secret) for secret in secrets]
    if not keys:
        raise ValueError("no webhook secret configured")
    prefix, lowered = _header_family(headers)
    msg_id = _required(lowered, f"{prefix}-id")
    timestamp = _required(lowered, f"{prefix}-timestamp")
    signatures = _required(lowered, f"{prefix}-signature")
    if not _MESSAGE_ID.fullmatch(msg_id):
        raise WebhookVerificationError(f"malformed header {prefix}-id")
    _check_timestamp(timestamp, prefix, time.time() if now is None else now, tolerance)
    candidates = _v1_signatures(signatures)
    for key in keys:
        expected = _digest(key, msg_id, timestamp, body)
        # Check every candidate without stopping early: the work done does not depend on the match.
        if any([hmac.compare_digest(expected, candidate) for candidate in candidates]):
            return msg_id
    raise WebhookVerificationError("no matching signature")


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return _checked_key(secret)
    return decode_secret(secret)


def _checked_key(key: bytes) -> bytes:
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"webhook secret must decode to {MIN_SECRET_BYTES}-{MAX_SECRET_BYTES} bytes, not {len(key)}"
        )
    return key


def _digest(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def _header_family(headers: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The header prefix in use and the headers keyed by lower-case name."""
    lowered = {str(name).lower(): value for name, value in headers.items()}
    for prefix in HEADER_PREFIXES:
        if any(f"{prefix}-{part}" in lowered for part in ("id", "timestamp", "signature")):
            return prefix, lowered
    return HEADER_PREFIXES[0], lowered


def _required(headers: dict[str, str], name: str) -> str:
    value = headers.get(name)
    if not isinstance(value, str) or not value.strip():
        raise WebhookVerificationError(f"missing header {name}")
    return value.strip()


def _check_timestamp(value: str, prefix: str, now: float, tolerance: int) -> None:
    if not _TIMESTAMP.fullmatch(value):
        raise WebhookVerificationError(f"malformed header {prefix}-timestamp")
    age = now - int(value)
    if age > tolerance:
        raise WebhookVerificationError("timestamp too old")
    if age < -tolerance:
        raise WebhookVerificationError("timestamp too new")


def _v1_signatures(header: str) -> list[bytes]:
    """Decoded ``v1`` entries of a signature header; entries that do not parse are skipped."""
    decoded = []
    for entry in header.split():
        # Two header lines arrive joined by ", " (WSGI): "v1,<a>, v1,<b>".
        version, _, signature = entry.rstrip(",").partition(",")
        if version != "v1":
            continue
        try:
            decoded.append(base64.b64decode(signature.encode("ascii"), validate=True))
        except (binascii.Error, UnicodeEncodeError):
            continue
    return decoded
