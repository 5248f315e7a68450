"""Render an upstream email into ledger rows: one Resend request body per mailbox, with its key.

Every distinct mailbox of ``to``, ``cc`` and ``bcc`` gets an email of its own, addressed to it alone.
The body is rendered once and stored, so every retry sends the same bytes under the same key. Keys
are deterministic and a row's id is a UUIDv5 of its key. Fan-out and key formats:
docs/architecture.md, "The send path".
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any

from marketing_pilot_client.payloads import RESERVED_TAGS
from shared.addresses import bare_address, mailbox_key
from shared.errors import PayloadInvalid
from shared.resend_client import encode_body
from shared.resend_schemas import check_send_request
from shared.sending.payloads import EmailFields

#: Namespace of ledger row ids derived from idempotency keys.
MESSAGE_ID_NAMESPACE = uuid.UUID("0b6c3c1e-6f43-4c67-9a3e-2f5a6d1c8e20")
TASK_ID_HEADER = "X-Task-ID"
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
#: Characters of a task reference kept in keys and tags (a UUID is 36).
MAX_TASK_REF = 80


@dataclass(frozen=True)
class RenderedMessage:
    """One ledger row to be: its id, key, recipient (bare address) and the exact request body.

    ``content_hash`` identifies what the caller asked for (see :func:`stored_content_hash`); a
    ``refusal`` is a message that will not be sent, recorded ``failed`` with that reason.
    """

    id: uuid.UUID
    idempotency_key: str
    recipient: str
    subject: str
    request: dict[str, Any]
    content_hash: str = ""
    #: The key came from the caller (whose content may differ under the same key: a conflict).
    caller_keyed: bool = False
    refusal: str | None = None


def render_email(
    email: EmailFields,
    *,
    connector_id: uuid.UUID,
    task_ref: str,
    default_from: str | None,
    task_id: uuid.UUID | None = None,
) -> list[RenderedMessage]:
    """One rendered message per distinct mailbox of ``to``, ``cc`` and ``bcc`` (fan-out), in order.

    ``task_ref`` names the request in keys and the ``X-Task-ID`` header (the ``tasks`` row id, else
    the Celery task id); the ``task_id`` tag is set only for a ``tasks`` row (``task_id``).

    Raises :class:`PayloadInvalid` if the result is not a valid Resend request (e.g. no sender).
    """
    sender = email.from_ or default_from
    if not sender:
        raise PayloadInvalid("from: required (the payload has none and the connector has no default_from)")
    ref = task_reference(task_ref)
    return [
        _render_one(email, to, sender=sender, connector_id=connector_id, ref=ref, task_id=task_id)
        for to in mailboxes(email)
    ]


def mailboxes(email: EmailFields) -> list[str]:
    """The distinct mailboxes of ``to``, then ``cc``, then ``bcc``, each as the caller wrote it first."""
    seen: dict[str, str] = {}
    for value in [*email.to, *(email.cc or []), *(email.bcc or [])]:
        seen.setdefault(mailbox_key(value), value)
    return list(seen.values())


def _render_one(
    email: EmailFields,
    to: str,
    *,
    sender: str,
    connector_id: uuid.UUID,
    ref: str,
    task_id: uuid.UUID | None,
) -> RenderedMessage:
    content = _content(email, to, sender)
    digest = content_hash(content)
    address = bare_address(to)
    key = message_key(
        connector_id=connector_id,
        task_ref=ref,
        recipient=address,
        content_hash=digest,
        caller_key=email.idempotency_key,
    )
    message_id = message_id_for(key)
    headers = {**(content.pop("headers", None) or {}), TASK_ID_HEADER: ref}
    tags = content.pop("tags", [])
    if task_id is not None:
        tags.append({"name": "task_id", "value": str(task_id)})
    tags.append({"name": "message_id", "value": str(message_id)})
    # Refused before it is stored if Resend would refuse it; checked once, not again by the client.
    request = check_send_request({**content, "headers": headers, "tags": tags})
    return RenderedMessage(
        message_id, key, address, email.subject, request, digest, email.idempotency_key is not None
    )


def _content(email: EmailFields, to: str, sender: str) -> dict[str, Any]:
    """The caller's content for one mailbox, in wire form (no worker-set tags or headers)."""
    body: dict[str, Any] = {"from": sender, "to": [to], "subject": email.subject}
    optional = {
        "html": email.html_body,
        "text": email.text,
        "reply_to": email.reply_to,
        "headers": email.headers or None,
    }
    body.update({name: value for name, value in optional.items() if value is not None})
    tags = email.all_tags()
    if tags:
        body["tags"] = [tag.model_dump() for tag in tags]
    return body


def content_hash(content: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of one mailbox's ``content``, its ``to`` reduced to the mailbox.

    ``Ann <Ann@X.test>`` and ``ann@x.test`` are one mailbox: the same email to both is one email.
    """
    canonical = {**content, "to": [mailbox_key(to) for to in content.get("to", [])]}
    return hashlib.sha256(encode_body(canonical)).hexdigest()


def stored_content_hash(request: dict[str, Any]) -> str:
    """:func:`content_hash` of the caller's content held in a stored request (worker-set parts removed)."""
    content = dict(request)
    headers = {name: value for name, value in (content.pop("headers", None) or {}).items()}
    headers.pop(TASK_ID_HEADER, None)
    tags = [tag for tag in content.pop("tags", None) or [] if tag.get("name") not in RESERVED_TAGS]
    if headers:
        content["headers"] = headers
    if tags:
        content["tags"] = tags
    return content_hash(content)


def recipient_hash(address: str, *, scope: uuid.UUID | None = None) -> str:
    """16 hex characters naming a mailbox (case-insensitive), within ``scope`` if given, without
    spelling the address in the key."""
    name = address.strip().lower() if scope is None else f"{scope}/{address.strip().lower()}"
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def message_key(
    *,
    connector_id: uuid.UUID,
    task_ref: str,
    recipient: str,
    content_hash: str,
    caller_key: str | None = None,
) -> str:
    """The deterministic idempotency key of one recipient's email (formats in the module doc)."""
    if caller_key:
        return f"{caller_key}/{recipient_hash(recipient, scope=connector_id)}"
    ref = task_reference(task_ref)
    return f"pilot/{connector_id}/{ref}/{recipient_hash(recipient)}/{content_hash[:32]}"


def chunk_key(member_keys: list[str]) -> str:
    """The key of one batch call: a digest of its members' keys, whatever their order."""
    digest = hashlib.sha256("\n".join(sorted(member_keys)).encode()).hexdigest()
    return f"pilot-batch/{digest}"


def message_id_for(key: str) -> uuid.UUID:
    """The ledger row id of the message with idempotency key ``key``."""
    return uuid.uuid5(MESSAGE_ID_NAMESPACE, key)


def task_reference(task_ref: str) -> str:
    """``task_ref`` reduced to what Resend accepts as a tag value (letters, digits, ``_``, ``-``)."""
    cleaned = _TAG_UNSAFE.sub("_", task_ref)[:MAX_TASK_REF]
    if not cleaned:
        raise PayloadInvalid("task reference: empty (no task_id and no Celery task id)")
    return cleaned
