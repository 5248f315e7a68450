"""Pydantic models for Resend's send requests and responses.

Field names and limits follow the official spec (``resend-openapi.yaml``) and the documented limits
it leaves out (docs/architecture.md, "The send path"). :func:`parse_send_request` raises
:class:`shared.errors.PayloadInvalid`, one line per problem, naming the field and never the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from marketing_pilot_client.fields import (
    MAX_ATTACHMENT_BYTES,
    MAX_TAGS,
    MAX_TO_ADDRESSES,
    Address,
    AddressList,
    Attachment,
    Headers,
    OptionalAddressList,
    Tag,
    empty_to_none,
)
from shared.errors import PayloadInvalid

#: Items per ``POST /emails/batch`` call.
MAX_BATCH_SIZE = 100
#: Problems listed in one PayloadInvalid message (a 100-item batch could otherwise list hundreds).
MAX_REPORTED_ERRORS = 10

_LINE_BREAK = re.compile(r"[\r\n]")


class _WireModel(BaseModel):
    """Frozen, strict about unknown fields, and built from wire names or Python names."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True)


class SendEmailRequest(_WireModel):
    """The body of ``POST /emails`` (and one item of ``POST /emails/batch``)."""

    from_: Address = Field(alias="from")
    to: AddressList = Field(min_length=1, max_length=MAX_TO_ADDRESSES)
    subject: str = Field(min_length=1)
    html: str | None = None
    text: str | None = None
    cc: OptionalAddressList = None
    bcc: OptionalAddressList = None
    reply_to: OptionalAddressList = None
    headers: Annotated[Headers | None, BeforeValidator(empty_to_none)] = None
    attachments: Annotated[list[Attachment] | None, BeforeValidator(empty_to_none)] = None
    tags: Annotated[
        Annotated[list[Tag], Field(max_length=MAX_TAGS)] | None, BeforeValidator(empty_to_none)
    ] = None
    scheduled_at: str | None = None

    @field_validator("subject")
    @classmethod
    def _subject_one_line(cls, value: str) -> str:
        if _LINE_BREAK.search(value):
            raise ValueError("must not contain line breaks")
        return value

    @field_validator("scheduled_at", mode="before")
    @classmethod
    def _scheduled_at_text(cls, value: Any) -> Any:
        # Resend takes ISO 8601 or natural language ("in 1 min"); a datetime must carry its zone.
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("must be timezone-aware")
            return value.isoformat()
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("attachments")
    @classmethod
    def _attachments_size(cls, value: list[Attachment] | None) -> list[Attachment] | None:
        total = sum(len(attachment.content or "") for attachment in value or [])
        if total > MAX_ATTACHMENT_BYTES:
            raise ValueError(f"total size {total} exceeds Resend's 40 MB per email")
        return value

    @model_validator(mode="after")
    def _has_body(self) -> SendEmailRequest:
        if self.html is None and self.text is None:
            raise ValueError("html or text is required")
        return self

    def to_wire(self) -> dict[str, Any]:
        """The exact JSON body: wire names, unset fields left out, keys in field order."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


#: The names a stored wire body may use (``from``, never ``from_``).
WIRE_FIELDS = frozenset(field.alias or name for name, field in SendEmailRequest.model_fields.items())


def parse_send_request(data: SendEmailRequest | Mapping[str, Any], *, where: str = "") -> SendEmailRequest:
    """Validate ``data`` (a model or a wire-form mapping) or raise :class:`PayloadInvalid`.

    ``where`` prefixes every field name in the message (e.g. ``"requests[3]."``).
    """
    if isinstance(data, SendEmailRequest):
        return data
    if not isinstance(data, Mapping):
        raise PayloadInvalid(f"{where or 'request'}: must be a mapping of Resend fields")
    unknown = sorted(key for key in data if key not in WIRE_FIELDS)
    if unknown:
        raise PayloadInvalid(f"invalid email request: {where}{unknown[0]}: unknown field (use wire names)")
    try:
        return SendEmailRequest.model_validate(data)
    except ValidationError as exc:
        raise PayloadInvalid(describe_errors(exc, where=where)) from None


class CheckedRequest(dict[str, Any]):
    """A wire-form send request :func:`check_send_request` accepted: clients send it without
    validating again (validation is about a tenth of a send's CPU). Treat it as read-only."""


def check_send_request(data: Mapping[str, Any], *, where: str = "") -> CheckedRequest:
    """``data`` validated (raises :class:`PayloadInvalid`), as a :class:`CheckedRequest` copy."""
    parse_send_request(data, where=where)
    return CheckedRequest(data)


def describe_errors(exc: ValidationError, *, where: str = "") -> str:
    """One clause per problem, naming the field by its wire name; input values are never shown."""
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    clauses = []
    for error in errors[:MAX_REPORTED_ERRORS]:
        field = ".".join(str(part) for part in error["loc"]) or "request"
        clauses.append(f"{where}{field}: {error['msg'].removeprefix('Value error, ')}")
    if len(errors) > MAX_REPORTED_ERRORS:
        clauses.append(f"and {len(errors) - MAX_REPORTED_ERRORS} more")
    return "invalid email request: " + "; ".join(clauses)


class SendEmailResponse(BaseModel):
    """``POST /emails`` 200 body."""

    id: str = Field(min_length=1)


class BatchCreated(BaseModel):
    """One created email in a batch answer."""

    id: str = Field(min_length=1)


class BatchItemError(BaseModel):
    """One refused item of a permissive batch: ``index`` into the request array."""

    index: int = Field(ge=0)
    message: str = ""


class BatchResponse(BaseModel):
    """``POST /emails/batch`` 200 body; ``errors`` only appears in permissive mode."""

    data: list[BatchCreated] = Field(default_factory=list)
    errors: list[BatchItemError] = Field(default_factory=list)

    @field_validator("errors", mode="before")
    @classmethod
    def _null_errors(cls, value: Any) -> Any:
        return [] if value is None else value


class ErrorBody(BaseModel):
    """Resend's error body ``{statusCode, name, message}``; every field tolerated missing."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    message: str | None = None
    status_code: int | None = Field(default=None, alias="statusCode")

    @field_validator("name", "message", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return None if value is None else str(value)
