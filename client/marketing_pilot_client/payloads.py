"""The kwargs of ``pilot.send_email`` and ``pilot.send_batch``: the models the worker validates against.

Unknown keys are refused. Each email of a batch is validated on its own by the worker (an invalid one
is refused alone), so :class:`SendBatchPayload` types ``emails`` loosely and the schema names
:class:`EmailFields` as their shape (:mod:`marketing_pilot_client.schema`).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    model_validator,
)

from marketing_pilot_client.contract import DEFAULT_QUEUE, SEND_BATCH, SEND_EMAIL, Priority, priority_for
from marketing_pilot_client.fields import (
    MAX_ATTACHMENT_BYTES,
    MAX_TO_ADDRESSES,
    TAG_PATTERN,
    Address,
    AddressList,
    Attachment,
    Headers,
    OptionalAddressList,
    Tag,
    Topic,
)

#: Tag and header names the worker sets itself; a caller may not set them.
RESERVED_TAGS = frozenset({"task_id", "message_id"})
RESERVED_HEADERS = frozenset({"x-task-id"})
#: Caller keys leave room for the ``/<recipient hash>`` suffix within Resend's 256 characters.
MAX_CALLER_KEY_LENGTH = 200
#: Emails in one ``pilot.send_batch`` task (chunked into calls of 100 by the worker).
MAX_BATCH_EMAILS = 1000
#: Queue names for outcome events: letters, digits, ``.``, ``_``, ``:`` and ``-``.
OUTCOMES_QUEUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$"
_CALLER_KEY = re.compile(r"^[\x21-\x7e]+$")
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
MetadataValue = Annotated[str, Field(pattern=TAG_PATTERN)]
ScheduledTime = Annotated[datetime | None, BeforeValidator(_scheduled_time)]
AttachmentList = Annotated[list[Attachment] | None, AfterValidator(_attachments_fit)]


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
    #: What the email is about; recipients may leave one topic (the service's ``shared.unsubscribe``).
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


class Routing(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    connector_id: uuid.UUID
    organization_id: uuid.UUID | None = None
    task_id: uuid.UUID | None = None


class _Classed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``transactional`` or ``bulk``; absent, :func:`~marketing_pilot_client.contract.priority_for` decides.
    priority: Priority | None = None


class OutcomesOptIn(BaseModel):
    """``outcomes_queue``: where (if anywhere) the caller wants the recipients' outcome events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Opt-in: the queue (yours) each recipient's outcome events are published to as ``pilot.outcome``.
    outcomes_queue: str | None = Field(default=None, pattern=OUTCOMES_QUEUE_PATTERN)

    @model_validator(mode="after")
    def _not_ours(self) -> OutcomesOptIn:
        queue = self.outcomes_queue
        if queue is not None and (queue.startswith("pilot.") or queue == DEFAULT_QUEUE):
            raise ValueError("outcomes_queue: name a queue of your own (not pilot.* or celery)")
        return self


class SendEmailPayload(Routing, _Classed, OutcomesOptIn, EmailFields):
    """``pilot.send_email`` with the email's content."""

    @property
    def resolved_priority(self) -> Priority:
        """The class the email's rows are sent in."""
        recipients = len(self.to) + len(self.cc or []) + len(self.bcc or [])
        return priority_for(SEND_EMAIL, self.priority, recipients)


class SendBatchPayload(Routing, _Classed, OutcomesOptIn):
    """``pilot.send_batch``: many emails for one connector, each checked later (:func:`parse_emails`)."""

    emails: list[Any] = Field(min_length=1, max_length=MAX_BATCH_EMAILS)

    @property
    def resolved_priority(self) -> Priority:
        """The class the emails' rows are sent in."""
        return priority_for(SEND_BATCH, self.priority, len(self.emails))


class CancelPayload(BaseModel):
    """``pilot.cancel``: the rows named by one of ``idempotency_key`` (with ``connector_id``),
    ``task_id`` or ``message_ids``; ``connector_id`` and ``organization_id`` narrow any of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connector_id: uuid.UUID | None = None
    organization_id: uuid.UUID | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=MAX_CALLER_KEY_LENGTH)
    task_id: uuid.UUID | None = None
    message_ids: list[uuid.UUID] | None = Field(default=None, min_length=1)
