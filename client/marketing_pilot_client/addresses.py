"""Email addresses as callers write them: one mailbox per value, ``a@b.c`` or ``Name <a@b.c>``.

``email-validator`` checks the address (syntax only); display names are checked here. A value that
could reach a mailbox no suppression check saw (two mailboxes, a comment, a group, a control
character) is refused. Mailboxes compare by their lower-cased bare address (:func:`mailbox_key`).
Why: docs/architecture.md, "The send path".
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from email_validator import EmailNotValidError, validate_email

#: ``Name <address>``: the part before ``<`` is the display name (possibly empty or quoted).
_NAMED = re.compile(r"^(?P<name>[^<>]*?)\s*<(?P<address>[^<>]*)>$")
#: C0 controls (line breaks among them), DEL, C1 controls and lone surrogates: never part of an
#: address or a name.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: Characters an unquoted display name may not hold (RFC 5322 specials other than ``.``).
_NAME_SPECIALS = re.compile(r'[()<>\[\]:;@\\,"]')
_QUOTED = re.compile(r'^"(?:[^"\\]|\\.)*"$')
FORMAT_HINT = 'must be one address like "a@example.com" or "Name <a@example.com>"'


class Mailbox(NamedTuple):
    """One parsed mailbox: the display name (None when absent) and the bare address."""

    display_name: str | None
    address: str


def parse_mailbox(value: str) -> Mailbox:
    """Split ``value`` into display name and bare address; raises ``ValueError`` saying what is wrong.

    The message never repeats the value (it may be a recipient's address).
    """
    parsed = _parse(value)
    if isinstance(parsed, str):
        raise ValueError(parsed)
    return parsed


@functools.lru_cache(maxsize=8192)
def _parse(value: str) -> Mailbox | str:
    # Cached: every address is checked twice per send (the task payload, then the Resend request),
    # and a campaign's sender thousands of times; email-validator takes about 20 µs per address.
    if _CONTROL.search(value):
        return "must not contain line breaks, other control characters or lone surrogates"
    named = _NAMED.match(value.strip())
    name: str | None = None
    if named is None:
        if "<" in value or ">" in value:
            return FORMAT_HINT
        address = value.strip()
    else:
        name, address = named["name"] or None, named["address"].strip()
        if name and not _QUOTED.match(name) and _NAME_SPECIALS.search(name):
            return 'a display name holding , ; : @ ( ) [ ] or " must be in double quotes'
    problem = _bare_address_problem(address)
    return problem if problem is not None else Mailbox(name, address)


def check_bare_address(address: str) -> str:
    """``address`` if it is one valid bare address (``a@example.com``); else ``ValueError``."""
    parsed = _parse(address)
    if isinstance(parsed, str):
        raise ValueError(parsed)
    if parsed.display_name is not None or parsed.address != address:
        raise ValueError('must be a bare address like "a@example.com" (no display name)')
    return address


def _bare_address_problem(address: str) -> str | None:
    if not address:
        return FORMAT_HINT
    try:
        # test_environment admits the reserved ``.test`` domain (tests and demos); it only disables
        # DNS checks otherwise, and those are off anyway.
        validate_email(address, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        return f"{FORMAT_HINT} ({exc})"
    return None


def check_address(value: str) -> str:
    """``value`` unchanged if it names exactly one valid mailbox; else ``ValueError``."""
    parse_mailbox(value)
    return value


def bare_address(value: str) -> str:
    """``a@b.c`` from ``Name <a@b.c>`` (or from ``a@b.c``), for a value :func:`check_address` accepted.

    A value it refused comes back trimmed, so a refusal can still be recorded against it.
    """
    try:
        return parse_mailbox(value).address
    except ValueError:
        return value.strip()


def mailbox_key(value: str) -> str:
    """The identity of a mailbox: its bare address, trimmed and lower-cased."""
    return bare_address(value).lower()
