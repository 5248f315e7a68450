"""How permanent a Resend bounce is, even when the payload does not say.

The type is read from ``bounce.type`` when known, else from a subtype that belongs to one type only,
else from the documented form of ``bounce.message`` (older payloads, still delivered by retries and
replays, carry only that). A bounce none of them classifies has no type, and counts as soft.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, NamedTuple


class BounceType(enum.StrEnum):
    """``data.bounce.type``: Resend classifies bounces as these three."""

    PERMANENT = "Permanent"
    TRANSIENT = "Transient"
    UNDETERMINED = "Undetermined"


class BounceSource(enum.StrEnum):
    """Where a bounce's type was read from."""

    TYPE = "type"
    SUBTYPE = "subType"
    MESSAGE = "message"


class BounceClassification(NamedTuple):
    """A bounce's type (None: unknown) and where it was read from (None: nowhere)."""

    type: BounceType | None
    source: BounceSource | None


UNCLASSIFIED = BounceClassification(None, None)

_TYPES: dict[str, BounceType] = {bounce_type.value: bounce_type for bounce_type in BounceType}

#: Subtypes of one type only. ``General`` is both a Permanent and a Transient subtype: it tells nothing.
_SUBTYPES = {
    "NoEmail": BounceType.PERMANENT,
    "Suppressed": BounceType.PERMANENT,
    "OnAccountSuppressionList": BounceType.PERMANENT,
    "MailboxFull": BounceType.TRANSIENT,
    "MessageTooLarge": BounceType.TRANSIENT,
    "ContentRejected": BounceType.TRANSIENT,
    "AttachmentRejected": BounceType.TRANSIENT,
    "Undetermined": BounceType.UNDETERMINED,
}
#: A distinctive, lower-cased fragment of each documented message, with the type it belongs to.
_MESSAGES = (
    # Permanent / General, NoEmail, Suppressed, OnAccountSuppressionList.
    ("sent a hard bounce message", BounceType.PERMANENT),
    ("not possible to retrieve the recipient email address", BounceType.PERMANENT),
    ("on the suppression list because it has", BounceType.PERMANENT),
    ("suppressed sending to this address", BounceType.PERMANENT),
    # Transient / General, MailboxFull, MessageTooLarge, ContentRejected, AttachmentRejected.
    ("sent a general bounce message", BounceType.TRANSIENT),
    ("because the recipient's inbox was full", BounceType.TRANSIENT),
    ("message you sent was too large", BounceType.TRANSIENT),
    ("contains content that the provider doesn't allow", BounceType.TRANSIENT),
    ("contained an unacceptable attachment", BounceType.TRANSIENT),
    # Undetermined / Undetermined.
    ("didn't contain enough information", BounceType.UNDETERMINED),
)


def classify_bounce(bounce: Mapping[str, Any]) -> BounceClassification:
    """The type of ``data.bounce``, from its ``type``, else its ``subType``, else its ``message``."""
    raw_type = bounce.get("type")
    declared = _TYPES.get(raw_type) if isinstance(raw_type, str) else None
    if declared is not None:
        return BounceClassification(declared, BounceSource.TYPE)
    subtype = bounce.get("subType")
    if isinstance(subtype, str) and subtype in _SUBTYPES:
        return BounceClassification(_SUBTYPES[subtype], BounceSource.SUBTYPE)
    message = bounce.get("message")
    if isinstance(message, str):
        text = message.replace("\u2019", "'").lower()
        for fragment, bounce_type in _MESSAGES:
            if fragment in text:
                return BounceClassification(bounce_type, BounceSource.MESSAGE)
    return UNCLASSIFIED
