"""Request-body checks of `POST /emails` and `POST /emails/batch`, as Resend does them.

Plain dict checks on purpose: they run on every request and must stay cheap.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

from sandbox.api_errors import ApiError, missing_field, validation_error
from sandbox.scheduling import send_time

MAX_RECIPIENTS = 50
MAX_BATCH = 100
MAX_TAGS = 75
MAX_TAG_LENGTH = 256
MAX_IDEMPOTENCY_KEY = 256

_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")
_NAMED_ADDRESS = re.compile(r"[^<>]*<([^@\s<>]+@[^@\s<>]+\.[^@\s<>]+)>")
_TAG_TEXT = re.compile(r"[A-Za-z0-9_-]+")
_RECIPIENT_FIELDS = ("to", "cc", "bcc", "reply_to")


def check_idempotency_key(key: str | None) -> None:
    """400 ``invalid_idempotency_key`` unless ``key`` is absent or 1-256 characters."""
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ApiError(
            400, "invalid_idempotency_key", "Idempotency key must be between 1-256 characters long."
        )


def bare_address(value: str) -> str | None:
    """``a@b.c`` from ``a@b.c`` or ``Name <a@b.c>``; None if it is neither."""
    if _ADDRESS.fullmatch(value):
        return value
    named = _NAMED_ADDRESS.fullmatch(value.strip())
    return named.group(1) if named else None


def validate_email(payload: Any, *, now: float, in_batch: bool = False) -> dict[str, Any]:
    """The email with recipient fields as lists; raises :class:`ApiError` on the first problem.

    ``send_at`` (not a Resend field) is added: when a scheduled email is due (epoch seconds), else None;
    ``attachment_summary`` (nor is it) describes each attachment: sizes and sha256 of decoded content.
    """
    if not isinstance(payload, dict):
        raise validation_error("The request body must be a JSON object.")
    email = dict(payload)
    for name in ("from", "to"):
        if not email.get(name):
            raise missing_field(name)
    if not email.get("subject") and not email.get("template"):
        raise missing_field("subject")
    _check_from(email["from"])
    _check_template(email)
    for name in _RECIPIENT_FIELDS:
        if name in email and email[name] is not None:
            email[name] = _address_list(name, email[name])
    if len(email["to"]) > MAX_RECIPIENTS:
        raise validation_error(f"Too many recipients in `to`: the maximum is {MAX_RECIPIENTS}.")
    if in_batch and "attachments" in email:
        raise validation_error("Attachments are not supported with the batch endpoint.")
    if "attachments" in email:
        email["attachment_summary"] = _check_attachments(email["attachments"])
    _check_headers(email.get("headers"))
    email["tags"] = _checked_tags(email.get("tags"))
    email["send_at"] = send_time(email.get("scheduled_at"), now)
    return email


#: Attachment fields kept in the sandbox's description of an email.
_ATTACHMENT_NAMES = ("filename", "content_type", "content_id", "path")
#: Resend's limit on an email's attachments, measured on the base64 text.
MAX_ATTACHMENTS_BASE64 = 40 * 1024 * 1024


def validate_batch(payload: Any) -> list[Any]:
    """The batch array itself (items are checked one by one by the caller)."""
    if not isinstance(payload, list):
        raise validation_error("The request body must be a JSON array of emails.")
    if not payload:
        raise validation_error("The batch must contain at least one email.")
    if len(payload) > MAX_BATCH:
        raise validation_error(f"Too many emails in the batch: the maximum is {MAX_BATCH}.")
    return payload


def _check_from(value: Any) -> None:
    if not isinstance(value, str) or bare_address(value) is None:
        raise validation_error(
            "Invalid `from` field. The email address needs to follow the `email@example.com` or "
            "`Name <email@example.com>` format."
        )


def _check_template(email: dict[str, Any]) -> None:
    if "template" not in email:
        return
    template = email["template"]
    if not isinstance(template, dict) or not isinstance(template.get("id"), str) or not template["id"]:
        raise validation_error("Invalid `template` field: it must be an object with a string `id`.")
    mixed = [name for name in ("html", "text") if email.get(name) is not None]
    if mixed:
        raise validation_error(f"`template` cannot be used together with `{mixed[0]}`.")


def _address_list(name: str, value: Any) -> list[str]:
    addresses = [value] if isinstance(value, str) else value
    if not isinstance(addresses, list) or not all(isinstance(a, str) and bare_address(a) for a in addresses):
        raise validation_error(
            f"Invalid `{name}` field. The email address needs to follow the `email@example.com` or "
            "`Name <email@example.com>` format."
        )
    return addresses


def _check_attachments(value: Any) -> list[dict[str, Any]]:
    """Each attachment described (``content`` decoded and hashed); refuses what Resend refuses."""
    if not isinstance(value, list):
        raise validation_error("Invalid `attachments` field: it must be an array.")
    summary: list[dict[str, Any]] = []
    total = 0
    for item in value:
        if not isinstance(item, dict) or not (item.get("content") or item.get("path")):
            raise ApiError(422, "invalid_attachment", "Attachment must have either a `content` or `path`.")
        described = {name: item[name] for name in _ATTACHMENT_NAMES if isinstance(item.get(name), str)}
        content = item.get("content")
        if content is not None:
            if not isinstance(content, str):
                raise ApiError(422, "invalid_attachment", "Attachment `content` must be a base64 string.")
            try:
                data = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(422, "invalid_attachment", "Attachment `content` must be base64.") from None
            total += len(content)
            described |= {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        summary.append(described)
    if total > MAX_ATTACHMENTS_BASE64:
        raise validation_error("Attachments exceed the 40 MB limit per email (after base64 encoding).")
    return summary


def _check_headers(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise validation_error("Invalid `headers` field: it must be an object of string values.")


def _checked_tags(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise validation_error(f"Invalid `tags` field: it must be an array of at most {MAX_TAGS} tags.")
    for tag in value:
        if not isinstance(tag, dict) or not all(_valid_tag_text(tag.get(part)) for part in ("name", "value")):
            raise validation_error(
                "Invalid `tags` field: name and value may only contain ASCII letters, numbers, "
                f"underscores or dashes, and be at most {MAX_TAG_LENGTH} characters."
            )
    return [{"name": tag["name"], "value": tag["value"]} for tag in value]


def _valid_tag_text(text: Any) -> bool:
    return isinstance(text, str) and len(text) <= MAX_TAG_LENGTH and bool(_TAG_TEXT.fullmatch(text))
