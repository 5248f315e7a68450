"""Task payloads (the kwargs of ``pilot.send_email`` and ``pilot.send_batch``) parsed for the worker.

The models are the client's (:mod:`marketing_pilot_client.payloads`, one definition); an invalid payload
raises ``PayloadInvalid`` naming every bad field, never a value. Each email of a batch is validated on
its own (:func:`parse_emails`). The fields: docs/architecture.md, "The send path", and the README.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from marketing_pilot_client.payloads import CancelPayload as CancelPayload
from marketing_pilot_client.payloads import EmailFields as EmailFields
from marketing_pilot_client.payloads import Routing as Routing
from marketing_pilot_client.payloads import SendBatchPayload as SendBatchPayload
from marketing_pilot_client.payloads import SendEmailPayload as SendEmailPayload
from shared.errors import PayloadInvalid

#: Ledger rows one resume task may name.
MAX_MESSAGE_IDS = 1000
#: Lone surrogates cannot be encoded as UTF-8: PostgreSQL and Resend would both refuse the text.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_M = TypeVar("_M", bound=BaseModel)


class ResumePayload(Routing):
    """``pilot.send_email`` naming ledger rows already written (by the outbox or by beat)."""

    message_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_MESSAGE_IDS)


@dataclass(frozen=True)
class RefusedEmail:
    """An email of a batch that is refused alone: its position, why, and what the caller sent."""

    index: int
    reason: str
    data: Any


def parse_cancel(kwargs: Mapping[str, Any]) -> CancelPayload:
    """Validate ``pilot.cancel`` kwargs, or raise :class:`PayloadInvalid` naming each bad field."""
    return _parse(CancelPayload, kwargs, "cancel")


def parse_emails(items: Sequence[Any]) -> list[EmailFields | RefusedEmail]:
    """Each email of a batch validated on its own, in order; a bad one becomes a :class:`RefusedEmail`."""
    return [_parse_email(index, item) for index, item in enumerate(items)]


def _parse_email(index: int, item: Any) -> EmailFields | RefusedEmail:
    where = f"emails.{index}"
    if not isinstance(item, Mapping):
        return RefusedEmail(index, f"invalid send_batch payload: {where}: must be an object", item)
    try:
        return _parse(EmailFields, item, "send_batch", where=f"{where}.")
    except PayloadInvalid as exc:
        return RefusedEmail(index, str(exc), item)


def parse_send_email(kwargs: Mapping[str, Any]) -> SendEmailPayload | ResumePayload:
    """Validate ``pilot.send_email`` kwargs, or raise :class:`PayloadInvalid` naming each bad field."""
    model: type[SendEmailPayload | ResumePayload] = (
        ResumePayload if "message_ids" in kwargs else SendEmailPayload
    )
    return _parse(model, kwargs, "send_email")


def parse_send_batch(kwargs: Mapping[str, Any]) -> SendBatchPayload:
    """Validate ``pilot.send_batch`` kwargs, or raise :class:`PayloadInvalid`."""
    return _parse(SendBatchPayload, kwargs, "send_batch")


def _parse(model: type[_M], kwargs: Mapping[str, Any], name: str, *, where: str = "") -> _M:
    if not isinstance(kwargs, Mapping):
        raise PayloadInvalid(f"invalid {name} payload: {where or 'kwargs'}: must be a mapping")
    unstorable = unstorable_text(kwargs, where=where.rstrip("."))
    if unstorable:
        raise PayloadInvalid(f"invalid {name} payload: {'; '.join(unstorable)}")
    try:
        return model.model_validate(dict(kwargs))
    except ValidationError as exc:
        raise PayloadInvalid(f"invalid {name} payload: {describe(exc, where=where)}") from None


def unstorable_text(value: Any, *, where: str = "", limit: int = 10) -> list[str]:
    """``field: problem`` for each string (value or key) holding a NUL or a lone surrogate, at most
    ``limit``, fields named under ``where``. A batch's ``emails`` are left to :func:`parse_emails`."""
    problems: list[str] = []
    _walk(value, where, problems, limit, top=True)
    return problems


def _walk(value: Any, path: str, problems: list[str], limit: int, *, top: bool = False) -> None:
    if len(problems) >= limit:
        return
    if isinstance(value, str):
        problem = _text_problem(value)
        if problem:
            problems.append(f"{path or 'payload'}: {problem}")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            name = str(key)
            problem = _text_problem(name)
            if problem:
                problems.append(f"{path or 'payload'}: a field name {problem}")
            elif not (top and name == "emails"):
                _walk(item, f"{path}.{name}" if path else name, problems, limit)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk(item, f"{path}.{index}", problems, limit)


def storable_text(text: str) -> str:
    """``text`` with every NUL and lone surrogate replaced by U+FFFD, so it can be stored (and shown)."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii() and _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return text


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "must not contain NUL characters"
    if not text.isascii() and _SURROGATE.search(text):
        return "must be valid Unicode (no lone surrogates)"
    return None


def describe(exc: ValidationError, *, limit: int = 10, where: str = "") -> str:
    """One clause per problem, naming the field (after ``where``); values are never shown."""
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    clauses = []
    for error in errors[:limit]:
        located = ".".join(str(part) for part in error["loc"])
        field = where + located if located else where.rstrip(".") or "payload"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        clauses.append(f"{field}: {message}")
    if len(errors) > limit:
        clauses.append(f"and {len(errors) - limit} more")
    return "; ".join(clauses)
