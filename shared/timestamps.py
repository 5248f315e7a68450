"""The one reading of a time an operator or a file gives: ISO 8601, with ``Z`` or an offset.

``2026-12-05``, ``2026-12-05T14:00``, ``2026-12-05T14:00:00Z``, ``2026-12-05 14:00:00+02:00`` are all
read; a time without ``Z`` or an offset is taken as UTC. The CLI's ``--since`` and ``--expires-at``
and the suppression CSV's ``expires_at`` all use it.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: How a refusal says what is expected.
ISO_TIME_HINT = "must be an ISO 8601 time such as 2026-12-05T14:00:00Z (Z or an offset; UTC when neither)"


def parse_iso_time(value: str) -> datetime:
    """``value`` as an aware datetime (UTC when it names no offset); ``ValueError`` if it is not ISO 8601."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(ISO_TIME_HINT) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
