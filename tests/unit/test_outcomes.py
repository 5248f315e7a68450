"""shared.sending.outcomes: a ledger row's status as the caller sees it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.models import MessageStatus
from shared.sending.outcomes import RecipientResult, ResultStatus, count_by

FOLDED = {
    MessageStatus.QUEUED: ResultStatus.PENDING,
    MessageStatus.SENDING: ResultStatus.PENDING,
    MessageStatus.DEFERRED: ResultStatus.DEFERRED,
    MessageStatus.SENT: ResultStatus.SENT,
    MessageStatus.DELIVERY_DELAYED: ResultStatus.SENT,
    MessageStatus.DELIVERED: ResultStatus.SENT,
    MessageStatus.BOUNCED: ResultStatus.SENT,
    MessageStatus.COMPLAINED: ResultStatus.SENT,
    MessageStatus.FAILED: ResultStatus.FAILED,
    MessageStatus.SUPPRESSED: ResultStatus.SUPPRESSED,
    MessageStatus.SCHEDULED: ResultStatus.SCHEDULED,
    MessageStatus.CANCELLED: ResultStatus.CANCELLED,
}


def test_every_ledger_status_has_an_answer() -> None:
    assert set(FOLDED) == set(MessageStatus)


@pytest.mark.parametrize(("row_status", "shown"), FOLDED.items())
def test_a_row_status_is_answered_as_the_callers_status(row_status: str, shown: ResultStatus) -> None:
    assert RecipientResult.answer("a@example.test", row_status).status == shown


def test_a_sent_answer_carries_no_reason() -> None:
    assert (
        RecipientResult.answer("a@example.test", MessageStatus.DELIVERED, reason="old error").reason is None
    )


@pytest.mark.parametrize("row_status", [MessageStatus.DEFERRED, MessageStatus.QUEUED])
def test_a_waiting_answer_says_when_it_goes_next(row_status: str) -> None:
    at = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)

    result = RecipientResult.answer("a@example.test", row_status, next_attempt_at=at)

    assert result.next_attempt_at == at.isoformat()


def test_a_final_answer_has_no_next_attempt() -> None:
    at = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)

    assert (
        RecipientResult.answer("a@example.test", MessageStatus.FAILED, next_attempt_at=at).next_attempt_at
        is None
    )


def test_count_by_counts_each_status_sorted_by_status() -> None:
    assert count_by(["sent", "failed", "sent"]) == {"failed": 1, "sent": 2}
