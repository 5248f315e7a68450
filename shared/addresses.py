"""Email addresses as callers write them; the rules live with the payload models the client shares.

Re-exported here for the service's modules: :mod:`marketing_pilot_client.addresses` is their home.
"""

from __future__ import annotations

from marketing_pilot_client.addresses import (
    FORMAT_HINT,
    Mailbox,
    bare_address,
    check_address,
    check_bare_address,
    mailbox_key,
    parse_mailbox,
)

__all__ = [
    "FORMAT_HINT",
    "Mailbox",
    "bare_address",
    "check_address",
    "check_bare_address",
    "mailbox_key",
    "parse_mailbox",
]
