"""worker.events.bounce_policy: 3 consecutive soft bounces spanning 72 h, no delivery between → 30 days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.events.bounce_policy import DeliveryFact, SoftBouncePolicy, soft_bounce_expiry

T0 = datetime(2026, 11, 1, tzinfo=UTC)
POLICY = SoftBouncePolicy()


def facts(*entries: tuple[str, float]) -> list[DeliveryFact]:
    return [DeliveryFact(kind, T0 + timedelta(hours=hours)) for kind, hours in entries]


def test_soft_bounce_expiry_three_over_72_hours_escalates_for_30_days() -> None:
    history = facts(("soft_bounce", 0), ("soft_bounce", 40), ("soft_bounce", 72))
    assert soft_bounce_expiry(history, POLICY) == T0 + timedelta(hours=72, days=30)


@pytest.mark.parametrize(
    "history",
    [
        facts(("soft_bounce", 0), ("soft_bounce", 72)),
        facts(("soft_bounce", 0), ("soft_bounce", 1), ("soft_bounce", 71)),
        facts(("soft_bounce", 0), ("delivered", 10), ("soft_bounce", 40), ("soft_bounce", 80)),
        facts(("soft_bounce", 0), ("soft_bounce", 40), ("soft_bounce", 80), ("delivered", 81)),
        facts(("soft_bounce", 0), ("hard_bounce", 1), ("soft_bounce", 40), ("soft_bounce", 80)),
        [],
    ],
    ids=["two", "short-span", "delivery-between", "delivery-after", "hard-between", "empty"],
)
def test_soft_bounce_expiry_does_not_escalate(history: list[DeliveryFact]) -> None:
    assert soft_bounce_expiry(history, POLICY) is None


def test_soft_bounce_expiry_ignores_arrival_order() -> None:
    history = facts(("soft_bounce", 72), ("soft_bounce", 0), ("delivered", -5), ("soft_bounce", 40))
    assert soft_bounce_expiry(history, POLICY) == T0 + timedelta(hours=72, days=30)


def test_soft_bounce_expiry_policy_is_configurable() -> None:
    policy = SoftBouncePolicy(count=2, span=timedelta(hours=1), suppress_for=timedelta(days=1))
    assert soft_bounce_expiry(facts(("soft_bounce", 0), ("soft_bounce", 1)), policy) == T0 + timedelta(
        hours=1, days=1
    )
