"""Signed webhook requests for the receiver tests and benchmarks, signed by the independent
``standardwebhooks`` library (not by our own ``shared.webhook_signature``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from standardwebhooks import Webhook

#: Fixed secrets (32 bytes each) so failures are reproducible.
SECRET_A = "whsec_" + base64.b64encode(b"A" * 32).decode()
SECRET_B = "whsec_" + base64.b64encode(bytes(range(1, 33))).decode()
#: A secret the receiver is not configured with.
SECRET_OTHER = "whsec_" + base64.b64encode(b"Z" * 32).decode()
#: The frozen clock of the receiver tests (unix seconds).
NOW = 1_790_000_000
PATH = "/api/webhooks/resend"


@dataclass(frozen=True)
class SignedRequest:
    """A request body with its headers (content type included)."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def with_headers(self, **changes: str | None) -> SignedRequest:
        """A copy with headers changed (``None`` removes one); ``svix_id`` means ``svix-id``."""
        headers = dict(self.headers)
        for name, value in changes.items():
            key = name.replace("_", "-")
            if value is None:
                headers.pop(key, None)
            else:
                headers[key] = value
        return replace(self, headers=headers)


def library_signature(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64>`` computed by the standardwebhooks library (plain ``hmac`` for non-UTF-8 bodies,
    which the library cannot sign)."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        key = base64.b64decode(secret.removeprefix("whsec_")) if isinstance(secret, str) else secret
        digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        return "v1," + base64.b64encode(digest).decode()
    return str(Webhook(secret).sign(msg_id, moment, text))


def signed(
    body: bytes,
    *,
    secret: str | bytes = SECRET_A,
    msg_id: str | None = None,
    timestamp: int = NOW,
    prefix: str = "svix",
    signature: str | None = None,
) -> SignedRequest:
    """``body`` with ``{prefix}-id/-timestamp/-signature`` headers signed by the library."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    signature = signature or library_signature(secret, msg_id, timestamp, body)
    headers = {
        "content-type": "application/json",
        f"{prefix}-id": msg_id,
        f"{prefix}-timestamp": str(timestamp),
        f"{prefix}-signature": signature,
    }
    return SignedRequest(body, headers)
