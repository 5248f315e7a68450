"""Render an upstream email into ledger rows: one Resend request body per mailbox, with its key.

Every distinct mailbox of ``to``, ``cc`` and ``bcc`` gets an email of its own, addressed to it alone.
The body is rendered once and stored, so every retry sends the same bytes under the same key. Keys
are deterministic and a row's id is a UUIDv5 of its key; unsubscribe links are added once the key is
known. Fan-out, keys and links: docs/architecture.md, "The send path" and "One-click unsubscribe".
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime
from typing import Any

from marketing_pilot_client.payloads import RESERVED_TAGS
from shared.addresses import bare_address, mailbox_key
from shared.errors import PayloadInvalid
from shared.resend_client import encode_body
from shared.resend_schemas import check_send_request
from shared.sending import attachments
from shared.sending.payloads import EmailFields
from shared.unsubscribe.links import (
    LIST_UNSUBSCRIBE,
    LIST_UNSUBSCRIBE_POST,
    NOT_CONFIGURED,
    PLACEHOLDER,
    UNSUBSCRIBE_PATH,
    UnsubscribeLinks,
    fill,
    has_list_unsubscribe,
    has_placeholder,
    list_headers,
)
from shared.unsubscribe.tokens import UnsubscribeToken

#: Namespace of ledger row ids derived from idempotency keys.
MESSAGE_ID_NAMESPACE = uuid.UUID("0b6c3c1e-6f43-4c67-9a3e-2f5a6d1c8e20")
TASK_ID_HEADER = "X-Task-ID"
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
#: Characters of a task reference kept in keys and tags (a UUID is 36).
MAX_TASK_REF = 80
#: An unsubscribe URL as rendering writes it, wherever it stands in a stored request.
_UNSUBSCRIBE_URL = re.compile(r"https?://[^\s\"'<>]*?" + re.escape(UNSUBSCRIBE_PATH) + r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class LinkOptions:
    """How a request's emails get unsubscribe links: who makes them (None: this process cannot),
    the organization they name, and whether its emails are bulk (headers unless an email opts out)."""

    links: UnsubscribeLinks | None
    organization_id: uuid.UUID
    bulk: bool = False


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
    #: When it may leave (it waits ``scheduled`` until then); None: at once.
    scheduled_at: datetime | None = None
    #: The attachment bytes its request names, by digest (one mapping shared by an email's rows).
    blobs: Mapping[str, bytes] = dataclass_field(default_factory=dict)
    #: The email's topic (None: it has none).
    topic: str | None = None


def render_email(
    email: EmailFields,
    *,
    connector_id: uuid.UUID,
    task_ref: str,
    default_from: str | None,
    task_id: uuid.UUID | None = None,
    links: LinkOptions | None = None,
) -> list[RenderedMessage]:
    """One rendered message per distinct mailbox of ``to``, ``cc`` and ``bcc`` (fan-out), in order.

    ``task_ref`` names the request in keys and the ``X-Task-ID`` header (the ``tasks`` row id, else
    the Celery task id); the ``task_id`` tag is set only for a ``tasks`` row (``task_id``).
    ``links``: how unsubscribe links are made (none without it).

    Raises :class:`PayloadInvalid` if the result is not a valid Resend request (e.g. no sender), or
    if the email needs an unsubscribe link this process cannot make.
    """
    sender = email.from_ or default_from
    if not sender:
        raise PayloadInvalid("from: required (the payload has none and the connector has no default_from)")
    ref = task_reference(task_ref)
    _check_links(email, links)
    # Decoded and hashed once per email, however many mailboxes it goes to.
    stored, blobs = attachments.stored_form(email.attachments)
    return [
        _render_one(
            email,
            to,
            sender=sender,
            connector_id=connector_id,
            ref=ref,
            task_id=task_id,
            links=links,
            stored=(stored, blobs),
        )
        for to in mailboxes(email)
    ]


def _check_links(email: EmailFields, links: LinkOptions | None) -> None:
    if links is not None and links.links is not None:
        return
    if email.list_unsubscribe:
        raise PayloadInvalid(f"list_unsubscribe: {NOT_CONFIGURED}")
    for field, text in (("html", email.html_body), ("text", email.text)):
        if has_placeholder(text):
            raise PayloadInvalid(f"{field}: {PLACEHOLDER} needs an unsubscribe link; {NOT_CONFIGURED}")


def _wants_headers(email: EmailFields, links: LinkOptions | None) -> bool:
    """Whether the email gets the List-Unsubscribe headers: asked for, or bulk and not opted out."""
    if email.list_unsubscribe is not None:
        return email.list_unsubscribe
    return links is not None and links.bulk


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
    stored: tuple[list[dict[str, Any]], Mapping[str, bytes]] = ([], {}),
    links: LinkOptions | None = None,
) -> RenderedMessage:
    files, blobs = stored
    content = _content(email, to, sender)
    if files:
        # The digests stand for the bytes in the content hash and in the stored request.
        content["attachments"] = files
    digest = content_hash(_keyed_content(content, email))
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
    with_headers = _wants_headers(email, links) and not has_list_unsubscribe(headers)
    if (
        links is not None
        and links.links is not None
        and (with_headers or has_placeholder(email.html_body, email.text))
    ):
        token = UnsubscribeToken(links.organization_id, message_id, address.lower(), email.topic)
        url = links.links.unsubscribe_url(token)
        for part in ("html", "text"):
            if part in content:
                content[part] = fill(content[part], url)
        if with_headers:
            headers.update(list_headers(url))
    tags = content.pop("tags", [])
    if task_id is not None:
        tags.append({"name": "task_id", "value": str(task_id)})
    tags.append({"name": "message_id", "value": str(message_id)})
    # Refused before it is stored if Resend would refuse it; checked once, not again by the client.
    # The attachments were checked as the payload was read; their stored form is not Resend's.
    files = content.pop("attachments", None)
    request: dict[str, Any] = check_send_request({**content, "headers": headers, "tags": tags})
    if files:
        request = {**request, "attachments": files}
    return RenderedMessage(
        message_id,
        key,
        address,
        email.subject,
        request,
        digest,
        email.idempotency_key is not None,
        scheduled_at=email.scheduled_at,
        blobs=blobs,
        topic=email.topic,
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


def _keyed_content(content: dict[str, Any], email: EmailFields) -> dict[str, Any]:
    """What the key's content hash covers: the wire content, plus the topic and the unsubscribe
    choice when given (so an email without them keeps the key it always had)."""
    keyed = dict(content)
    if email.topic is not None:
        keyed["topic"] = email.topic
    if email.list_unsubscribe is not None:
        keyed["list_unsubscribe"] = email.list_unsubscribe
    return keyed


def content_hash(content: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of one mailbox's ``content``, its ``to`` reduced to the mailbox.

    ``Ann <Ann@X.test>`` and ``ann@x.test`` are one mailbox: the same email to both is one email.
    """
    canonical = {**content, "to": [mailbox_key(to) for to in content.get("to", [])]}
    return hashlib.sha256(encode_body(canonical)).hexdigest()


def stored_content_hash(request: dict[str, Any]) -> str:
    """:func:`content_hash` of the caller's content held in a stored request (worker-set parts removed:
    the task header and tags, and unsubscribe links, whatever key sealed them)."""
    content = dict(request)
    headers = {name: value for name, value in (content.pop("headers", None) or {}).items()}
    headers.pop(TASK_ID_HEADER, None)
    if _UNSUBSCRIBE_URL.fullmatch(headers.get(LIST_UNSUBSCRIBE, "").strip("<>")):
        headers.pop(LIST_UNSUBSCRIBE)
        headers.pop(LIST_UNSUBSCRIBE_POST, None)
    for part in ("html", "text"):
        if isinstance(content.get(part), str):
            content[part] = _UNSUBSCRIBE_URL.sub(PLACEHOLDER, content[part])
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


def require_derived_ids(rows: Iterable[tuple[uuid.UUID, str]]) -> None:
    """Raise ValueError unless each ``(id, idempotency_key)`` has the id derived from the key: the
    ledger keeps a key once through its primary key (no index on the key itself)."""
    for message_id, key in rows:
        if message_id != message_id_for(key):
            raise ValueError(f"ledger row {message_id}: its id is not derived from its idempotency key")


def task_reference(task_ref: str) -> str:
    """``task_ref`` reduced to what Resend accepts as a tag value (letters, digits, ``_``, ``-``)."""
    cleaned = _TAG_UNSAFE.sub("_", task_ref)[:MAX_TASK_REF]
    if not cleaned:
        raise PayloadInvalid("task reference: empty (no task_id and no Celery task id)")
    return cleaned


def caller_tags(request: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The tags of a stored request the caller set (the worker's own left out), or None: what the
    ledger row keeps for outcome events once the body is dropped."""
    tags = request.get("tags") or []
    kept = [tag for tag in tags if isinstance(tag, dict) and tag.get("name") not in RESERVED_TAGS]
    return kept or None
