"""Turn the seed's ``send_email`` arguments into a Resend request: sender default, task id, metadata tags.

``task_id`` becomes the ``X-Task-ID`` header and a ``task_id`` tag. Each metadata entry whose name and
value fit Resend's tag rules (``[A-Za-z0-9_-]{1,256}``, at most 75 tags) becomes a tag too, so it
comes back in every webhook event; the others are listed as ``untagged_metadata`` in the result.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.errors import PayloadInvalid
from shared.resend_schemas import MAX_TAGS, TAG_PATTERN, SendEmailRequest, parse_send_request

TASK_ID_HEADER = "X-Task-ID"
TASK_ID_TAG = "task_id"
#: Keys a ``send_batch`` item (or ``send_email``) may carry; ``from`` is accepted for ``from_``.
ACCEPTED_FIELDS = frozenset(
    {
        "to", "subject", "body", "html", "text", "from_", "from", "reply_to", "cc", "bcc", "headers",
        "attachments", "tags", "scheduled_at", "task_id", "metadata", "idempotency_key",
    }
)  # fmt: skip
_TAG = re.compile(TAG_PATTERN)


@dataclass(frozen=True)
class EmailFields:
    """A validated request and what travels with it (task id, caller metadata, idempotency key)."""

    request: SendEmailRequest
    task_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    untagged: list[str] = field(default_factory=list)
    idempotency_key: str | None = None

    def result_metadata(self, idempotency_key: str | None) -> dict[str, Any]:
        """What a :class:`ConnectorResult` keeps about this email."""
        return {
            "metadata": dict(self.metadata),
            "task_id": self.task_id,
            "to": list(self.request.to),
            "idempotency_key": idempotency_key,
            "untagged_metadata": list(self.untagged),
        }


def build_request(fields: Mapping[str, Any], *, default_from: str | None, batch: bool = False) -> EmailFields:
    """Validate ``fields`` into a Resend request, or raise :class:`PayloadInvalid` naming the field."""
    unknown = sorted(str(key) for key in fields if key not in ACCEPTED_FIELDS)
    if unknown:
        raise PayloadInvalid(f"{unknown[0]}: unknown field")
    if batch and fields.get("attachments"):
        raise PayloadInvalid("attachments: not allowed in a batch send")
    sender = fields.get("from_") or fields.get("from") or default_from
    if not sender:
        raise PayloadInvalid("from_: not given and the connector has no default_from")
    task_id = None if fields.get("task_id") is None else str(fields["task_id"])
    metadata = _metadata(fields.get("metadata"))
    tags, untagged = _tags(task_id, list(fields.get("tags") or []), metadata)
    headers = dict(fields.get("headers") or {})
    if task_id is not None:
        headers[TASK_ID_HEADER] = task_id
    wire = {
        "from": sender,
        "to": fields.get("to"),
        "subject": fields.get("subject"),
        "html": fields.get("body", fields.get("html")),
        "text": fields.get("text"),
        "cc": fields.get("cc"),
        "bcc": fields.get("bcc"),
        "reply_to": fields.get("reply_to"),
        "headers": headers,
        "attachments": fields.get("attachments"),
        "tags": tags,
        "scheduled_at": fields.get("scheduled_at"),
    }
    request = parse_send_request({key: value for key, value in wire.items() if value is not None})
    key = fields.get("idempotency_key")
    return EmailFields(request, task_id, metadata, untagged, None if key is None else str(key))


def _metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PayloadInvalid("metadata: must be a mapping")
    return {str(key): item for key, item in value.items()}


def _tags(task_id: str | None, given: list[Any], metadata: dict[str, Any]) -> tuple[list[Any], list[str]]:
    """Tags to send (task id first, then the caller's, then metadata that fits) and metadata left out."""
    tags = list(given)
    if task_id is not None and _TAG.fullmatch(task_id):
        tags.insert(0, {"name": TASK_ID_TAG, "value": task_id})
    taken = {tag.get("name") if isinstance(tag, Mapping) else getattr(tag, "name", None) for tag in tags}
    untagged = []
    for name, value in metadata.items():
        text = _tag_value(value)
        if text is None or not _TAG.fullmatch(name) or name in taken or len(tags) >= MAX_TAGS:
            untagged.append(name)
            continue
        tags.append({"name": name, "value": text})
        taken.add(name)
    return tags, untagged


def _tag_value(value: Any) -> str | None:
    """A scalar's text if it fits a tag value; None for anything else."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | uuid.UUID):
        text = str(value)
        return text if _TAG.fullmatch(text) else None
    return None
