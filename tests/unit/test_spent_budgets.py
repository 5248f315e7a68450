"""SpentBudgets: a budget seen spent is peeked at (taking nothing) until it grants again."""

from __future__ import annotations

import uuid

import fakeredis
import pytest

from shared.models import Priority
from shared.rate_limit import ConnectorLimits, Decision, RateLimiter
from shared.sending.spent_budgets import SpentBudgets

CONNECTOR = uuid.uuid4()
LIMITS = ConnectorLimits(per_hour=2, per_day=100)


class Clock:
    now_ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter(clock: Clock) -> RateLimiter:
    return RateLimiter(fakeredis.FakeRedis(server=fakeredis.FakeServer()), key_prefix="t:", clock_ms=clock)


def test_a_budget_not_seen_spent_is_not_read(limiter: RateLimiter, monkeypatch: pytest.MonkeyPatch) -> None:
    def unexpected(*args: object) -> Decision:
        raise AssertionError("peeked")

    monkeypatch.setattr(limiter, "peek_emails", unexpected)
    assert SpentBudgets().refusal(limiter, CONNECTOR, 1, LIMITS, Priority.BULK) is None


def test_a_budget_seen_spent_answers_its_refusal_while_it_lasts(limiter: RateLimiter) -> None:
    spent = SpentBudgets()
    limiter.acquire_emails(CONNECTOR, 2, LIMITS)
    spent.saw_spent(CONNECTOR, Priority.BULK)

    refusal = spent.refusal(limiter, CONNECTOR, 1, LIMITS, Priority.BULK)

    assert refusal == Decision(granted=False, wait_seconds=1800.0, blocked_by="hour")
    assert limiter.get_usage_stats(CONNECTOR, "hour", LIMITS).used == 2


def test_a_budget_that_grants_again_is_forgotten(
    limiter: RateLimiter, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    spent = SpentBudgets()
    limiter.acquire_emails(CONNECTOR, 2, LIMITS)
    spent.saw_spent(CONNECTOR, Priority.BULK)
    clock.now_ms += 1_800_000

    assert spent.refusal(limiter, CONNECTOR, 1, LIMITS, Priority.BULK) is None
    monkeypatch.setattr(limiter, "peek_emails", lambda *args: pytest.fail("peeked again"))
    assert spent.refusal(limiter, CONNECTOR, 1, LIMITS, Priority.BULK) is None


def test_a_budget_seen_spent_for_bulk_mail_is_not_spent_for_transactional_mail(limiter: RateLimiter) -> None:
    limits = ConnectorLimits(per_hour=10, per_day=100, reserve_per_hour=5)
    spent = SpentBudgets()
    limiter.acquire_emails(CONNECTOR, 5, limits, keep_reserve=True)
    spent.saw_spent(CONNECTOR, Priority.BULK)

    assert spent.refusal(limiter, CONNECTOR, 1, limits, Priority.BULK) is not None
    assert spent.refusal(limiter, CONNECTOR, 1, limits, Priority.TRANSACTIONAL) is None
