"""Units: the rows one request carries, and the key it goes under.

One row is ``POST /emails`` under its own key; more (at most 100) are ``POST /emails/batch`` under a
key derived from the members' keys. Members, order and key are fixed before the request, so a unit
whose outcome is unknown is sent again only as itself. Attachments and scheduled emails go alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

from shared.resend_schemas import MAX_BATCH_SIZE
from shared.sending.rendering import chunk_key

#: Request fields ``POST /emails/batch`` does not accept.
SINGLE_ONLY_FIELDS = ("attachments", "scheduled_at")


class Member(Protocol):
    """What a unit needs of a row."""

    @property
    def idempotency_key(self) -> str:
        """The row's own key."""

    @property
    def request(self) -> Mapping[str, Any]:
        """The stored request body."""


_M = TypeVar("_M", bound=Member)


def batchable(request: Mapping[str, Any]) -> bool:
    """Whether an email may go in a batch request."""
    return not any(request.get(field) for field in SINGLE_ONLY_FIELDS)


def form(rows: Sequence[_M]) -> tuple[list[_M], list[_M]]:
    """The next unit from ``rows`` (oldest first): the rows it takes and those left for later.

    An email that must go alone goes alone when it is the oldest; otherwise it waits while the
    batchable rows go together.
    """
    if not rows:
        return [], []
    if not batchable(rows[0].request):
        return [rows[0]], list(rows[1:])
    taken = [row for row in rows if batchable(row.request)][:MAX_BATCH_SIZE]
    chosen = {id(row) for row in taken}
    return taken, [row for row in rows if id(row) not in chosen]


def in_unit_order(rows: Sequence[_M]) -> list[_M]:
    """The members in the order of their keys: one order, so one body for one key."""
    return sorted(rows, key=lambda row: row.idempotency_key)


def unit_key(rows: Sequence[Member]) -> str:
    """The idempotency key of a unit: a single row's own, else its batch's (from its members' keys)."""
    if len(rows) == 1:
        return rows[0].idempotency_key
    return chunk_key([row.idempotency_key for row in rows])
