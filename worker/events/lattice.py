"""The message status lattice, as a pure function of a message's events.

``scheduled < queued < deferred < sending < sent < delivery_delayed < delivered``; ``cancelled``,
``bounced``, ``complained``, ``failed`` and ``suppressed`` dominate any positive status; the events
``opened``/``clicked``/``scheduled`` are counters only. Among dominant events the latest by the event's
own ``created_at`` wins, never the arrival order, so any arrival order of one set of events gives one status.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from shared.models import MessageStatus as S
from shared.resend_events import EventType as E

#: Positive statuses, lowest first. A message only ever moves up this list.
POSITIVE_ORDER = (S.SCHEDULED, S.QUEUED, S.DEFERRED, S.SENDING, S.SENT, S.DELIVERY_DELAYED, S.DELIVERED)
#: Dominant statuses; on equal ``created_at`` the one listed later wins (a complaint is the strongest).
#: ``cancelled`` is the sender's alone (no event implies it) and the weakest: an event saying the
#: email went after all is believed.
DOMINANT_ORDER = (S.CANCELLED, S.FAILED, S.SUPPRESSED, S.BOUNCED, S.COMPLAINED)

#: The status each event implies; events not listed leave the status alone.
EVENT_STATUS: dict[str, S] = {
    E.SENT: S.SENT,
    E.DELIVERY_DELAYED: S.DELIVERY_DELAYED,
    E.DELIVERED: S.DELIVERED,
    E.BOUNCED: S.BOUNCED,
    E.COMPLAINED: S.COMPLAINED,
    E.FAILED: S.FAILED,
    E.SUPPRESSED: S.SUPPRESSED,
}

_POSITIVE_RANK: dict[str, int] = {status: rank for rank, status in enumerate(POSITIVE_ORDER)}
_DOMINANT_RANK: dict[str, int] = {status: rank for rank, status in enumerate(DOMINANT_ORDER)}


def status_from_events(events: Iterable[tuple[str, datetime]], base: str | None = None) -> str | None:
    """The status of a message given all its ``(event, occurred_at)`` pairs and its send-side status.

    ``base`` is the ledger's status before events are considered (``sent`` after a send). A positive
    base is kept if no event ranks higher; a dominant base yields to any event-derived status (the
    provider's word on what happened beats the sender's guess). Returns ``base`` when no event
    implies a status.
    """
    statuses = [(EVENT_STATUS[event], at) for event, at in events if event in EVENT_STATUS]
    dominant = [(at, _DOMINANT_RANK[status], status) for status, at in statuses if status in _DOMINANT_RANK]
    if dominant:
        return max(dominant)[2]
    positive: list[str] = [status for status, _ in statuses]
    if base in _POSITIVE_RANK:
        positive.append(base)
    if not positive:
        return base
    return max(positive, key=_POSITIVE_RANK.__getitem__)
