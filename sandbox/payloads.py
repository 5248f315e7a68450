"""Resend's webhook bodies for outbound email events."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

from sandbox.outcomes import PlannedEvent
from sandbox.store import EmailRecord


def iso_ms(timestamp: float) -> str:
    """Webhook time format: ISO 8601 with milliseconds and ``Z`` (``2026-02-22T23:41:12.126Z``)."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def postgres_time(timestamp: float) -> str:
    """REST time format: Postgres style (``2023-04-03 22:13:42.674981+00``)."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f") + "+00"


def new_message_id() -> str:
    """A Svix-style message id, unique per event and kept across retries of it."""
    return "msg_" + secrets.token_urlsafe(20).replace("-", "").replace("_", "")[:27]


def event_body(record: EmailRecord, event: PlannedEvent, created_at: float) -> bytes:
    """The exact bytes sent (and signed) for ``event`` of ``record``: one per email, its whole ``to``."""
    data: dict[str, Any] = {
        "email_id": record.id,
        "created_at": iso_ms(record.created_at),
        "from": record.sender,
        "to": record.to,
        "subject": record.subject,
        "message_id": f"<{record.id}@resend.dev>",
    }
    if record.tags:
        data["tags"] = {tag["name"]: tag["value"] for tag in record.tags}
    if record.headers:
        data["headers"] = [{"name": name, "value": value} for name, value in record.headers.items()]
    data.update(event.extra)
    if "click" in data:
        data["click"] = {**data["click"], "timestamp": iso_ms(created_at)}
    envelope = {"type": event.type, "created_at": iso_ms(created_at), "data": data}
    return json.dumps(envelope, separators=(",", ":")).encode()
