"""worker.events.lattice: the status is a function of the set of events, never of arrival order."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from worker.events.lattice import status_from_events

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


FIVE_EVENTS = [
    ("sent", at(0)),
    ("delivery_delayed", at(10)),
    ("delivered", at(20)),
    ("opened", at(30)),
    ("bounced", at(40)),
]


def test_status_from_events_all_120_orders_agree() -> None:
    results = {status_from_events(order, base="sent") for order in itertools.permutations(FIVE_EVENTS)}
    assert len(list(itertools.permutations(FIVE_EVENTS))) == 120
    assert results == {"bounced"}


def test_status_from_events_every_prefix_order_of_positive_events_agrees() -> None:
    positive = FIVE_EVENTS[:4]
    assert {status_from_events(order, base="sent") for order in itertools.permutations(positive)} == {
        "delivered"
    }


@pytest.mark.parametrize(
    ("events", "base", "expected"),
    [
        ([], "sent", "sent"),
        ([("opened", at(1))], "sent", "sent"),
        ([("clicked", at(1))], "delivered", "delivered"),
        ([("sent", at(1))], "delivered", "delivered"),
        ([("delivered", at(1)), ("delivery_delayed", at(2))], "sent", "delivered"),
        ([("delivered", at(1))], "sending", "delivered"),
        ([("delivered", at(1)), ("complained", at(2))], "sent", "complained"),
        ([("bounced", at(1)), ("delivered", at(2))], "sent", "bounced"),
        ([("bounced", at(2)), ("complained", at(1))], "sent", "bounced"),
        ([("bounced", at(1)), ("complained", at(1))], "sent", "complained"),
        ([("failed", at(1)), ("suppressed", at(1))], "sent", "suppressed"),
        ([("delivered", at(1))], "failed", "delivered"),
        ([], "suppressed", "suppressed"),
        ([("scheduled", at(1))], "queued", "queued"),
    ],
)
def test_status_from_events_lattice(events: list[tuple[str, datetime]], base: str, expected: str) -> None:
    assert status_from_events(events, base=base) == expected


def test_status_from_events_without_base_or_status_events_is_none() -> None:
    assert status_from_events([("opened", at(1))]) is None
