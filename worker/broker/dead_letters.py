"""A refused broker message as a dead-letter record: everything needed to see and replay it.

The main process builds a :class:`DeadLetterRecord` from the raw ``kombu.Message`` and publishes it
for a pool child to write (it never opens a database connection). The record is JSON-safe and
bounded: strings cleaned of NUL and lone surrogates, headers cut to a budget, the body kept up to
:data:`BODY_LIMIT` bytes with the size and SHA-256 of the whole.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, JsonValue, field_validator

from shared.models import DeadLetterReason
from worker.broker.message_check import JSON_CONTENT_TYPE, Refusal, printable

#: Bytes of a refused body kept (the size and digest always describe the whole body).
BODY_LIMIT = 256 * 1024
#: Longest task name, message id, queue or content type kept.
NAME_LIMIT = 200
#: Longest string kept inside the headers, and how many values (strings, numbers, items) in all.
HEADER_STRING_LIMIT = 1024
HEADER_VALUE_BUDGET = 500
HEADER_DEPTH_LIMIT = 8
#: Integers beyond what PostgreSQL's JSON numbers and most readers take are kept as strings.
LARGEST_JSON_INTEGER = 2**63


class DeadLetterRecord(BaseModel):
    """One refused message, as published to ``pilot.record_dead_letter`` (its kwargs) and stored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: DeadLetterReason
    detail: str
    task_name: str | None
    message_id: str | None
    queue: str | None
    exchange: str | None
    content_type: str | None
    content_encoding: str | None
    headers: JsonValue
    body_base64: str
    body_size: int
    body_sha256: str
    received_at: datetime

    @field_validator("body_base64")
    @classmethod
    def _is_base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not base64") from None
        return value

    @property
    def body(self) -> bytes:
        """The body as kept (at most :data:`BODY_LIMIT` bytes)."""
        return base64.b64decode(self.body_base64)


def dead_letter_record(message: Any, refusal: Refusal, *, received_at: datetime) -> DeadLetterRecord:
    """The record of ``message`` (a ``kombu.Message``) refused for ``refusal``."""
    raw = raw_body(message.body)
    delivery = message.delivery_info if isinstance(message.delivery_info, Mapping) else {}
    task_name, message_id = given_identity(message)
    return DeadLetterRecord(
        reason=refusal.reason,
        detail=clean_text(refusal.detail, HEADER_STRING_LIMIT),
        task_name=task_name,
        message_id=message_id,
        queue=name_or_none(delivery.get("routing_key")),
        exchange=name_or_none(delivery.get("exchange")),
        content_type=name_or_none(message.content_type),
        content_encoding=name_or_none(message.content_encoding),
        headers=json_safe(message.headers),
        body_base64=base64.b64encode(raw[:BODY_LIMIT]).decode("ascii"),
        body_size=len(raw),
        body_sha256=hashlib.sha256(raw).hexdigest(),
        received_at=received_at,
    )


def given_identity(message: Any) -> tuple[str | None, str | None]:
    """The task name and message id the message gives (headers, else a protocol 1 body), cleaned."""
    fields: Mapping[str, Any] = message.headers if isinstance(message.headers, Mapping) else {}
    if "task" not in fields and message.content_type == JSON_CONTENT_TYPE:
        try:
            payload = message.payload  # decoded already (and cached) by the check, when it could be
        except Exception:
            payload = None
        if isinstance(payload, Mapping):
            fields = {**payload, **fields}
    return name_or_none(fields.get("task")), name_or_none(fields.get("id"))


def raw_body(body: Any) -> bytes:
    """The message body as bytes, however the transport handed it over."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    if body is None:
        return b""
    return json.dumps(json_safe(body)).encode()


def name_or_none(value: Any) -> str | None:
    """A given name or id as a short printable string (a non-string in JSON), ``None`` if absent."""
    if value is None:
        return None
    # Unprintable characters (NUL and lone surrogates among them) become "?".
    return printable(value if isinstance(value, str) else json.dumps(json_safe(value)), NAME_LIMIT)


def clean_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, storable in PostgreSQL (no NUL, no lone surrogates)."""
    cut = text[:limit] + ("..." if len(text) > limit else "")
    return cut.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


def json_safe(value: Any) -> JsonValue:
    """``value`` as plain JSON PostgreSQL accepts: finite numbers, clean strings, bounded in size."""
    return _Sanitiser().convert(value, 0)


class _Sanitiser:
    """Converts one value, spending a budget of values so any input gives a bounded result."""

    def __init__(self) -> None:
        self.budget = HEADER_VALUE_BUDGET

    def convert(self, value: Any, depth: int) -> JsonValue:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value if abs(value) < LARGEST_JSON_INTEGER else str(value)
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)
        if isinstance(value, str):
            return clean_text(value, HEADER_STRING_LIMIT)
        if depth >= HEADER_DEPTH_LIMIT:
            return "(nested too deep)"
        if isinstance(value, Mapping):
            return {
                clean_text(str(key), HEADER_STRING_LIMIT): self.convert(item, depth + 1)
                for key, item in self._within_budget(value.items())
            }
        if isinstance(value, list | tuple):
            return [self.convert(item, depth + 1) for item in self._within_budget(value)]
        return f"({type(value).__name__})"

    def _within_budget(self, items: Any) -> list[Any]:
        kept = []
        for item in items:
            if self.budget <= 0:
                break
            kept.append(item)
            self.budget -= 1
        return kept
