"""Task payloads (the kwargs of ``pilot.send_email`` and ``pilot.send_batch``), validated by pydantic.

Unknown keys are refused, naming the key, and an invalid payload raises ``PayloadInvalid`` naming
every bad field, never a value. Each email of a batch is validated on its own (:func:`parse_emails`).
The fields (``topic`` and ``list_unsubscribe`` too): docs/architecture.md, "The send path".
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    model_validator,
)

from shared import task_names
from shared.errors import PayloadInvalid
from shared.models import Priority
from shared.resend_schemas import (
    MAX_ATTACHMENT_BYTES,
    MAX_TO_ADDRESSES,
    TAG_PATTERN,
    Address,
    AddressList,
    Attachment,
    Headers,
    OptionalAddressList,
    Tag,
)
from shared.sending.priority import priority_for
from shared.unsubscribe.topics import Topic

#: Tag and header names the worker sets itself; a caller may not set them.
RESERVED_TAGS = frozenset({"task_id", "message_id"})
RESERVED_HEADERS = frozenset({"x-task-id"})
#: Caller keys leave room for the ``/<recipient hash>`` suffix within Resend's 256 characters.
MAX_CALLER_KEY_LENGTH = 200
#: Emails in one ``pilot.send_batch`` task (chunked into calls of 100 by the worker).
MAX_BATCH_EMAILS = 1000
#: Ledger rows one resume task may name.
MAX_MESSAGE_IDS = 1000
_CALLER_KEY = re.compile(r"^[\x21-\x7e]+$")
#: Lone surrogates cannot be encoded as UTF-8: PostgreSQL and Resend would both refuse the text.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_M = TypeVar("_M", bound=BaseModel)
#: How far ahead an email may be scheduled (Resend's own limit).
MAX_SCHEDULE_AHEAD = timedelta(days=30)
_SCHEDULE_FORM = "an ISO 8601 date-time with its offset, e.g. 2026-12-08T09:00:00+01:00"


def _tags_from_mapping(value: Any) -> Any:
    """``{"campaign": "spring"}`` is accepted as shorthand for ``[{"name": ..., "value": ...}]``."""
    if isinstance(value, Mapping):
        return [{"name": name, "value": tag_value} for name, tag_value in value.items()]
    return value


def _scheduled_time(value: Any) -> Any:
    """``scheduled_at`` as an aware datetime: ISO 8601 with its offset (``Z`` for UTC), nothing else."""
    if value is None or isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"must be {_SCHEDULE_FORM} (natural language is not accepted)") from None
    else:
        raise ValueError(f"must be {_SCHEDULE_FORM}")
    if parsed is not None and parsed.utcoffset() is None:
        raise ValueError(f"needs its UTC offset: {_SCHEDULE_FORM}")
    return parsed


def _attachments_fit(value: list[Attachment] | None) -> list[Attachment] | None:
    """Every ``content`` is base64, and the email's attachments fit Resend's limit (base64 text)."""
    total = 0
    for index, attachment in enumerate(value or []):
        if attachment.path is not None and not attachment.path.startswith(("https://", "http://")):
            raise ValueError(f"{index}.path: must be an http(s) URL Resend can fetch")
        if attachment.content is not None:
            try:
                base64.b64decode(attachment.content, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"{index}.content: must be base64") from None
            total += len(attachment.content)
    if total > MAX_ATTACHMENT_BYTES:
        raise ValueError(
            f"the attachments are {total} bytes (base64); "
            f"Resend takes at most {MAX_ATTACHMENT_BYTES} per email"
        )
    return value


TagList = Annotated[list[Tag], BeforeValidator(_tags_from_mapping)]
ScheduledTime = Annotated[datetime | None, BeforeValidator(_scheduled_time)]
AttachmentList = Annotated[list[Attachment] | None, AfterValidator(_attachments_fit)]
MetadataValue = Annotated[str, Field(pattern=TAG_PATTERN)]


class EmailFields(BaseModel):
    """One email as an upstream app describes it; ``to`` may name several recipients (fan-out)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True)

    to: Annotated[AddressList, Field(min_length=1, max_length=MAX_TO_ADDRESSES)]
    subject: str = Field(min_length=1)
    html: str | None = None
    #: The seed's name for ``html``.
    body: str | None = None
    text: str | None = None
    from_: Address | None = Field(default=None, alias="from")
    reply_to: OptionalAddressList = None
    cc: Annotated[OptionalAddressList, Field(max_length=MAX_TO_ADDRESSES)] = None
    bcc: Annotated[OptionalAddressList, Field(max_length=MAX_TO_ADDRESSES)] = None
    headers: Headers | None = None
    tags: TagList | None = None
    #: Extra tags by name; Resend returns them in every webhook event of the email.
    metadata: dict[Annotated[str, Field(pattern=TAG_PATTERN)], MetadataValue] | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=MAX_CALLER_KEY_LENGTH)
    #: When the email leaves: it waits in the ledger until then (our scheduling, not Resend's).
    scheduled_at: ScheduledTime = None
    #: Files: base64 ``content`` (stored once per distinct content) or a ``path`` URL Resend fetches.
    attachments: AttachmentList = None
    #: What the email is about; recipients may leave one topic (see :mod:`shared.unsubscribe.topics`).
    topic: Topic | None = None
    #: The one-click unsubscribe headers: True asks for them, False opts out; None: bulk emails
    #: (every ``pilot.send_batch`` email) get them.
    list_unsubscribe: StrictBool | None = None

    @model_validator(mode="after")
    def _consistent(self) -> EmailFields:
        if self.html is not None and self.body is not None:
            raise ValueError("give html or body (its older name), not both")
        if self.html is None and self.body is None and self.text is None:
            raise ValueError("html, body or text is required")
        if self.idempotency_key is not None and not _CALLER_KEY.match(self.idempotency_key):
            raise ValueError("idempotency_key must be printable ASCII without spaces")
        reserved = {tag.name for tag in self.tags or []} | set(self.metadata or {})
        if reserved & RESERVED_TAGS:
            raise ValueError(f"tags {sorted(reserved & RESERVED_TAGS)} are set by the worker")
        if {name.lower() for name in self.headers or {}} & RESERVED_HEADERS:
            raise ValueError("header X-Task-ID is set by the worker")
        if self.scheduled_at is not None and self.scheduled_at > datetime.now(UTC) + MAX_SCHEDULE_AHEAD:
            raise ValueError("scheduled_at: at most 30 days ahead")
        return self

    @property
    def html_body(self) -> str | None:
        """The HTML part, whichever name it came under."""
        return self.html if self.html is not None else self.body

    def all_tags(self) -> list[Tag]:
        """The caller's tags followed by its metadata as tags."""
        extra = [Tag(name=name, value=value) for name, value in (self.metadata or {}).items()]
        return [*(self.tags or []), *extra]


class _Routing(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    connector_id: uuid.UUID
    organization_id: uuid.UUID | None = None
    task_id: uuid.UUID | None = None


class _Classed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``transactional`` or ``bulk``; absent, :func:`shared.sending.priority.priority_for` decides.
    priority: Priority | None = None


class SendEmailPayload(_Routing, _Classed, EmailFields):
    """``pilot.send_email`` with the email's content."""

    @property
    def resolved_priority(self) -> Priority:
        """The class the email's rows are sent in."""
        recipients = len(self.to) + len(self.cc or []) + len(self.bcc or [])
        return priority_for(task_names.SEND_EMAIL, self.priority, recipients)


class ResumePayload(_Routing):
    """``pilot.send_email`` naming ledger rows already written (by the outbox or by beat)."""

    message_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_MESSAGE_IDS)


class SendBatchPayload(_Routing, _Classed):
    """``pilot.send_batch``: many emails for one connector, each checked later (:func:`parse_emails`)."""

    emails: list[Any] = Field(min_length=1, max_length=MAX_BATCH_EMAILS)

    @property
    def resolved_priority(self) -> Priority:
        """The class the emails' rows are sent in."""
        return priority_for(task_names.SEND_BATCH, self.priority, len(self.emails))


class CancelPayload(BaseModel):
    """``pilot.cancel``: the rows named by one of ``idempotency_key`` (with ``connector_id``),
    ``task_id`` or ``message_ids``; ``connector_id`` and ``organization_id`` narrow any of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connector_id: uuid.UUID | None = None
    organization_id: uuid.UUID | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=MAX_CALLER_KEY_LENGTH)
    task_id: uuid.UUID | None = None
    message_ids: list[uuid.UUID] | None = Field(default=None, min_length=1)


def parse_cancel(kwargs: Mapping[str, Any]) -> CancelPayload:
    """Validate ``pilot.cancel`` kwargs, or raise :class:`PayloadInvalid` naming each bad field."""
    return _parse(CancelPayload, kwargs, "cancel")


@dataclass(frozen=True)
class RefusedEmail:
    """An email of a batch that is refused alone: its position, why, and what the caller sent."""

    index: int
    reason: str
    data: Any


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
