"""What a send task returns: one result per recipient, read from its ledger row.

Statuses: ``sent`` (Resend accepted it; later delivery events do not change this answer),
``suppressed``, ``deferred`` or ``scheduled`` (waits in PostgreSQL until ``next_attempt_at``),
``failed`` (with the reason), ``cancelled``, and ``pending`` (queued for its API key's next request,
or sent with its outcome not known yet: it goes again under the same key).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.models import EmailMessage, MessageStatus


class ResultStatus(StrEnum):
    """A recipient's status as the caller sees it (the ledger's statuses, folded)."""

    SENT = "sent"
    PENDING = "pending"
    DEFERRED = "deferred"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    #: Waits for its ``scheduled_at`` (``next_attempt_at`` says when).
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


#: Row statuses that mean Resend accepted the email.
ACCEPTED_STATUSES = frozenset(
    {
        MessageStatus.SENT,
        MessageStatus.DELIVERY_DELAYED,
        MessageStatus.DELIVERED,
        MessageStatus.BOUNCED,
        MessageStatus.COMPLAINED,
    }
)
#: Row statuses answered as ``pending``: the email has not left yet, or its outcome is not known yet.
PENDING_STATUSES = frozenset({MessageStatus.QUEUED, MessageStatus.SENDING})


@dataclass(frozen=True)
class RecipientResult:
    """The answer for one recipient."""

    recipient: str
    status: str
    reason: str | None = None
    resend_id: str | None = None
    message_id: str | None = None
    next_attempt_at: str | None = None

    @classmethod
    def of(cls, row: EmailMessage) -> RecipientResult:
        """The result a ledger row stands for."""
        return cls.answer(
            row.recipient,
            row.status,
            reason=row.last_error,
            resend_id=row.resend_email_id,
            message_id=row.id,
            next_attempt_at=row.next_attempt_at,
        )

    @classmethod
    def answer(
        cls,
        recipient: str,
        status: str,
        *,
        reason: str | None = None,
        resend_id: str | None = None,
        message_id: object = None,
        next_attempt_at: datetime | None = None,
    ) -> RecipientResult:
        """The result of a row in ``status`` (a ledger status), as the caller sees it."""
        shown = (
            ResultStatus.SENT
            if status in ACCEPTED_STATUSES
            else ResultStatus.PENDING
            if status in PENDING_STATUSES
            else status
        )
        waiting = shown in (ResultStatus.DEFERRED, ResultStatus.PENDING, ResultStatus.SCHEDULED)
        return cls(
            recipient=recipient,
            status=str(shown),
            reason=None if shown == ResultStatus.SENT else reason,
            resend_id=resend_id,
            message_id=None if message_id is None else str(message_id),
            next_attempt_at=next_attempt_at.isoformat() if next_attempt_at and waiting else None,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the Celery task returns)."""
        return {name: value for name, value in self.__dict__.items() if value is not None}


@dataclass
class SendOutcome:
    """Every recipient's result."""

    results: list[RecipientResult] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Recipients by status."""
        return count_by(result.status for result in self.results)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the seed's ``BatchResult`` figures beside the per-recipient results."""
        counts = self.counts()
        return {
            "total": len(self.results),
            "successful": counts.get(ResultStatus.SENT, 0),
            "failed": counts.get(ResultStatus.FAILED, 0),
            "counts": counts,
            "results": [result.as_dict() for result in self.results],
        }


def count_by(values: Iterable[str]) -> dict[str, int]:
    """How many times each value occurs, sorted by value."""
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))
