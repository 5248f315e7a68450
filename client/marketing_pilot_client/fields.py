"""Field types of the send payloads: addresses, headers and tags, with Resend's limits.

Shared by the client's payload models and the worker's Resend request models (one definition).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from marketing_pilot_client.addresses import check_address

#: Resend accepts at most 50 addresses in ``to`` (spec ``maxItems``).
MAX_TO_ADDRESSES = 50
#: Resend accepts at most 75 tags per email (docs, dashboard/emails/tags).
MAX_TAGS = 75
#: Tag names and values: ASCII letters, digits, ``_`` and ``-``, 1-256 characters.
TAG_PATTERN = r"^[A-Za-z0-9_-]{1,256}$"
#: Topic names: tag-name characters (letters, digits, ``_`` and ``-``), at most 64 of them.
TOPIC_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

# RFC 9110 token: the characters allowed in a header field name.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_LINE_BREAK = re.compile(r"[\r\n]")
#: Headers that address or route the email: only the ``from``, ``to``, ``cc``, ``bcc`` and
#: ``reply_to`` fields may do that, so every recipient is checked and recorded (lower case).
ADDRESS_HEADERS = frozenset(
    {
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "bcc",
        "return-path",
        "delivered-to",
        "envelope-to",
        "resent-from",
        "resent-sender",
        "resent-to",
        "resent-cc",
        "resent-bcc",
    }
)


def _one_or_many(value: Any) -> Any:
    """Resend accepts a string or a list; we always hold (and send) a list."""
    return [value] if isinstance(value, str) else value


def empty_to_none(value: Any) -> Any:
    """An empty list or mapping means "not given", so it is left out of the wire body."""
    return None if isinstance(value, list | tuple | dict) and not value else value


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    """Custom headers: token names, one line each, and none that addresses the email."""
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError("header names must be RFC 9110 tokens (letters, digits, -, _ ...)")
        if name.lower() in ADDRESS_HEADERS:
            raise ValueError(f"header {name}: addresses go in from, to, cc, bcc and reply_to, not in headers")
        if _LINE_BREAK.search(value):
            raise ValueError(f"header {name} must not contain line breaks")
    return headers


Topic = Annotated[str, Field(pattern=TOPIC_PATTERN)]
Address = Annotated[str, AfterValidator(check_address)]
Headers = Annotated[dict[str, str], AfterValidator(check_headers)]
AddressList = Annotated[list[Address], BeforeValidator(_one_or_many)]
OptionalAddressList = Annotated[
    list[Address] | None, BeforeValidator(_one_or_many), BeforeValidator(empty_to_none)
]


class Tag(BaseModel):
    """A ``{name, value}`` tag; Resend returns it in every webhook event for the email."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=TAG_PATTERN)
    value: str = Field(pattern=TAG_PATTERN)


#: Total attachment size per email, measured on the base64 text Resend receives.
MAX_ATTACHMENT_BYTES = 40 * 1024 * 1024


class Attachment(BaseModel):
    """A file attached to one email: base64 ``content`` or a ``path`` URL Resend fetches."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True)

    content: str | None = None
    filename: str | None = None
    path: str | None = None
    content_type: str | None = None
    content_id: str | None = None

    @model_validator(mode="after")
    def _content_or_path(self) -> Attachment:
        # Resend answers 422 invalid_attachment otherwise; refuse it before the call.
        if self.content is None and self.path is None:
            raise ValueError("needs content (base64) or path (URL)")
        return self
