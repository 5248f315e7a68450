"""Email addresses as callers write them; the rules live with the payload models the client shares
(:mod:`marketing_pilot_client.addresses`, re-exported here for the service's modules).

Logs above DEBUG show addresses masked (:func:`mask_address`). Why: docs/architecture.md, "The send path".
"""

from __future__ import annotations

import re

from marketing_pilot_client.addresses import (
    FORMAT_HINT,
    Mailbox,
    bare_address,
    check_address,
    check_bare_address,
    mailbox_key,
    parse_mailbox,
)

#: An address inside free text (a log line, a repr): a local part and a domain holding a dot.
ADDRESS_IN_TEXT = re.compile(r"[\w.!#$%&*+/=?^`{|}~-]+@(?:[\w-]+\.)+[\w-]+")
#: What stands for the hidden part of a local part.
MASK = "***"


def mask_address(address: str) -> str:
    """``a***@example.com`` for ``ada@example.com``: the first character of the local part and the
    domain, enough to tell providers apart in a log, not to know the person."""
    local, at, domain = address.rpartition("@")
    if not at:
        return MASK
    return f"{local[:1]}{MASK}@{domain}"


def mask_addresses(text: str) -> str:
    """``text`` with every address in it masked by :func:`mask_address`."""
    if "@" not in text:
        return text
    return ADDRESS_IN_TEXT.sub(lambda match: mask_address(match.group()), text)


__all__ = [
    "ADDRESS_IN_TEXT",
    "FORMAT_HINT",
    "MASK",
    "Mailbox",
    "bare_address",
    "check_address",
    "check_bare_address",
    "mailbox_key",
    "mask_address",
    "mask_addresses",
    "parse_mailbox",
]
