"""How well requests coalesced, from what the sandbox accepted and when the ledger queued each row.

Coalescing means a request takes every row waiting for its API key when it leaves (up to a full
batch). That is measured against the rows actually waiting, not against a request count, so it holds
however fast the rows arrive (a loaded machine queues them slower and sends more, smaller requests):

    requests = requests_of(sandbox.emails())
    assert left_behind(requests, queued_at, full=100, lag=0.5) == []
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Request:
    """One accepted request: when the sandbox accepted it (epoch seconds) and its recipients."""

    left_at: float
    recipients: frozenset[str]


@dataclass(frozen=True)
class Straggler:
    """A row that was waiting when a request that had room left without it."""

    recipient: str
    #: Index of that request, in the order they left.
    request: int
    #: How long the row had been queued when that request left.
    waited_s: float


def requests_of(emails: Iterable[Mapping[str, Any]]) -> list[Request]:
    """The sandbox's accepted emails (``GET /_sandbox/emails``) grouped into their requests (one
    idempotency key each), in the order they were accepted."""
    grouped: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for email in emails:
        grouped[email["idempotency_key"] or email["id"]].append(email)
    requests = [
        Request(
            left_at=min(float(email["created_at"]) for email in members),
            recipients=frozenset(address for email in members for address in email["to"]),
        )
        for members in grouped.values()
    ]
    return sorted(requests, key=lambda request: request.left_at)


def left_behind(
    requests: list[Request], queued_at: Mapping[str, float], *, full: int, lag: float
) -> list[Straggler]:
    """Rows queued at least ``lag`` seconds before a request left that went neither in it nor in an
    earlier one, though it carried fewer than ``full`` recipients.

    ``queued_at``: epoch seconds each recipient's row was queued. ``lag`` covers the time between a
    dispatcher's claim and the sandbox accepting its request (rows queued meanwhile go next time).
    """
    stragglers: list[Straggler] = []
    gone: set[str] = set()
    for index, request in enumerate(requests):
        gone |= request.recipients
        if len(request.recipients) >= full:
            continue
        stragglers += [
            Straggler(recipient, index, request.left_at - at)
            for recipient, at in queued_at.items()
            if recipient not in gone and at <= request.left_at - lag
        ]
    return stragglers
