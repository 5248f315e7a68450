"""The seed's ``send_email`` arguments as a ``pilot.send_email`` payload, for the one send path.

``body`` is the HTML part (``html`` is accepted too), ``from_`` (or ``from``) the sender. Metadata
entries that fit Resend's tag rules are sent as tags, the others listed as ``untagged_metadata``;
``task_id`` names the request. See docs/architecture.md, "The send path".
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from marketing_pilot_client.fields import MAX_TAGS, TAG_PATTERN
from marketing_pilot_client.payloads import RESERVED_TAGS
from shared.errors import PayloadInvalid

#: Keys a ``send_batch`` item (or ``send_email``) may carry, and their payload names.
FIELD_NAMES = {
    "to": "to",
    "subject": "subject",
    "body": "html",
    "html": "html",
    "text": "text",
    "from_": "from",
    "from": "from",
    "reply_to": "reply_to",
    "cc": "cc",
    "bcc": "bcc",
    "headers": "headers",
    "tags": "tags",
    "idempotency_key": "idempotency_key",
    "attachments": "attachments",
    "scheduled_at": "scheduled_at",
}
#: The request reference of sends without a task.
DIRECT = "direct"
_TAG = re.compile(TAG_PATTERN)


@dataclass(frozen=True)
class SeedEmail:
    """One email of the seed's API as the send path takes it, and what stays with its result."""

    payload: dict[str, Any]
    task_ref: str
    task_id: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    untagged: list[str] = field(default_factory=list)

    def result_metadata(self) -> dict[str, Any]:
        """What a :class:`ConnectorResult` keeps about this email."""
        return {
            "metadata": dict(self.metadata),
            "task_id": self.task_id,
            "to": self.payload.get("to"),
            "idempotency_key": self.payload.get("idempotency_key"),
            "untagged_metadata": list(self.untagged),
        }


def seed_email(
    fields: Mapping[str, Any], *, connector_id: uuid.UUID, task_row: uuid.UUID | None = None
) -> SeedEmail:
    """``fields`` as a payload for ``connector_id``; :class:`PayloadInvalid` names a field it cannot take.

    ``task_row``: the ``tasks`` row ``fields["task_id"]`` names, if it names one.
    """
    unknown = sorted(
        str(key) for key in fields if key not in FIELD_NAMES and key not in ("task_id", "metadata")
    )
    if unknown:
        raise PayloadInvalid(f"{unknown[0]}: unknown field")
    task_id = None if fields.get("task_id") is None else str(fields["task_id"])
    metadata = _metadata(fields.get("metadata"))
    tagged, untagged = _tagged(metadata, taken=_tag_names(fields.get("tags")))
    payload: dict[str, Any] = {"connector_id": str(connector_id)}
    for name, value in fields.items():
        if name in FIELD_NAMES and value is not None:
            payload[FIELD_NAMES[name]] = value
    if tagged:
        payload["metadata"] = tagged
    if task_row is not None:
        payload["task_id"] = str(task_row)
    return SeedEmail(payload, task_id or DIRECT, task_id, metadata, untagged)


def _metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PayloadInvalid("metadata: must be a mapping")
    return {str(key): item for key, item in value.items()}


def _tag_names(tags: Any) -> set[str]:
    if isinstance(tags, Mapping):
        return {str(name) for name in tags}
    if isinstance(tags, list):
        return {str(tag.get("name")) for tag in tags if isinstance(tag, Mapping)}
    return set()


def _tagged(metadata: dict[str, Any], *, taken: set[str]) -> tuple[dict[str, str], list[str]]:
    """The metadata sent as tags, and the names of the entries left out."""
    tagged: dict[str, str] = {}
    untagged: list[str] = []
    room = MAX_TAGS - len(taken)
    for name, value in metadata.items():
        text = _tag_value(value)
        fits = text is not None and _fits(name) and name not in RESERVED_TAGS and name not in taken
        if fits and len(tagged) < room and text is not None:
            tagged[name] = text
        else:
            untagged.append(name)
    return tagged, untagged


def _fits(text: str) -> bool:
    return _TAG.fullmatch(text) is not None


def _tag_value(value: Any) -> str | None:
    """A scalar's text if it fits a tag value; None for anything else."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | uuid.UUID):
        text = str(value)
        return text if _fits(text) else None
    return None
