"""`scheduled_at` as Resend reads it: ISO 8601 or "in <n> <unit>", at most 30 days ahead.

Resend also understands free natural language ("tomorrow at 9am", "Friday at 3pm ET"); the sandbox
refuses those with a message naming the field rather than guess a time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.api_errors import validation_error

#: Resend schedules at most this far ahead.
MAX_AHEAD = timedelta(days=30)

_RELATIVE = re.compile(r"in\s+(\d{1,7})\s*([a-z]+)", re.IGNORECASE)
_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
}
_FORMAT_HINT = (
    "Invalid `scheduled_at` field. Use an ISO 8601 date (`2026-08-05T11:52:01.858Z`) or `in <n> <unit>` "
    "(`in 1 min`)."
)


def send_time(value: Any, now: float) -> float | None:
    """When to send (epoch seconds) for a ``scheduled_at`` value; None: at once (absent, or already past).

    Raises 400 ``validation_error`` for anything else than a string in one of the two forms, or a
    time more than 30 days ahead.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise validation_error(_FORMAT_HINT)
    at = _absolute(value.strip(), now)
    if at is None:
        raise validation_error(_FORMAT_HINT)
    if at - now > MAX_AHEAD.total_seconds():
        raise validation_error("Invalid `scheduled_at` field. Emails can be scheduled up to 30 days ahead.")
    return at if at > now else None


def _absolute(text: str, now: float) -> float | None:
    relative = _RELATIVE.fullmatch(text)
    if relative is not None:
        seconds = _UNITS.get(relative.group(2).lower())
        return None if seconds is None else now + int(relative.group(1)) * seconds
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    # A time without an offset is read as UTC (Resend's own Python example sends naive local times).
    return (parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)).timestamp()
