"""What a send task returns: one result per recipient, read from its ledger row.

Statuses: ``sent`` (Resend accepted it; later delivery events do not change this answer),
``suppressed``, ``deferred`` (waits in PostgreSQL until ``next_attempt_at``), ``failed`` (with the
reason), and ``pending`` (a short retry is scheduled, or another worker is sending it right now).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.models import EmailMessage
from worker.batching import count_by

#: Row statuses that mean Resend accepted the email.
ACCEPTED_STATUSES = frozenset({"sent", "delivery_delayed", "delivered", "bounced", "complained"})


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
        status = "sent" if row.status in ACCEPTED_STATUSES else row.status
        if status in {"queued", "sending"}:
            status = "pending"
        return cls(
            recipient=row.recipient,
            status=status,
            reason=None if status == "sent" else row.last_error,
            resend_id=row.resend_email_id,
            message_id=str(row.id),
            next_attempt_at=row.next_attempt_at.isoformat() if row.next_attempt_at else None,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the Celery task returns)."""
        return {name: value for name, value in self.__dict__.items() if value is not None}


@dataclass
class SendOutcome:
    """Every recipient's result, and the countdown of the task's retry if one is due."""

    results: list[RecipientResult] = field(default_factory=list)
    retry_in: float | None = None

    def counts(self) -> dict[str, int]:
        """Recipients by status."""
        return count_by(result.status for result in self.results)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the seed's ``BatchResult`` figures beside the per-recipient results."""
        counts = self.counts()
        return {
            "total": len(self.results),
            "successful": counts.get("sent", 0),
            "failed": counts.get("failed", 0),
            "counts": counts,
            "results": [result.as_dict() for result in self.results],
        }
