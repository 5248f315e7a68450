"""Recipient → event plan: Resend's test addresses and the configurable shares."""

from __future__ import annotations

import random

import pytest

from sandbox.config import SandboxConfig
from sandbox.outcomes import plan_events


def types(recipient: str, **switches: float) -> list[str]:
    return [e.type for e in plan_events(recipient, SandboxConfig(**switches), random.Random(1))]


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        ("delivered@resend.dev", ["email.sent", "email.delivered"]),
        ("delivered+task42@resend.dev", ["email.sent", "email.delivered"]),
        ("Test <Delivered+x@Resend.dev>", ["email.sent", "email.delivered"]),
        ("bounced@resend.dev", ["email.sent", "email.bounced"]),
        ("bounced+a@resend.dev", ["email.sent", "email.bounced"]),
        ("complained@resend.dev", ["email.sent", "email.delivered", "email.complained"]),
        ("complained+b@resend.dev", ["email.sent", "email.delivered", "email.complained"]),
        ("suppressed@resend.dev", ["email.suppressed"]),
        ("someone@example.com", ["email.sent", "email.delivered"]),
        ("delivered@example.com", ["email.sent", "email.delivered"]),
    ],
)
def test_plan_follows_the_recipient(recipient: str, expected: list[str]) -> None:
    assert types(recipient) == expected


def test_test_addresses_ignore_the_shares() -> None:
    assert types("delivered@resend.dev", soft_bounce_rate=1.0, open_rate=1.0) == [
        "email.sent",
        "email.delivered",
    ]


def test_hard_bounce_is_permanent() -> None:
    bounce = plan_events("bounced@resend.dev", SandboxConfig(), random.Random(1))[-1].extra["bounce"]
    assert bounce["type"] == "Permanent"
    assert bounce["subType"]


def test_suppressed_names_previous_bounce() -> None:
    event = plan_events("suppressed@resend.dev", SandboxConfig(), random.Random(1))[0]
    assert event.extra["suppressed"]["reason"] == "previous_bounce"


def test_soft_bounce_share_delays_then_bounces_transiently() -> None:
    plan = plan_events("a@example.com", SandboxConfig(soft_bounce_rate=1.0), random.Random(1))
    assert [e.type for e in plan] == ["email.sent", "email.delivery_delayed", "email.bounced"]
    assert plan[-1].extra["bounce"]["type"] == "Transient"


def test_fail_share_ends_with_email_failed() -> None:
    plan = plan_events("a@example.com", SandboxConfig(fail_rate=1.0), random.Random(1))
    assert [e.type for e in plan] == ["email.sent", "email.failed"]
    assert plan[-1].extra["failed"]["reason"]


def test_open_share_adds_an_open_after_delivery() -> None:
    assert types("a@example.com", open_rate=1.0) == ["email.sent", "email.delivered", "email.opened"]


def test_click_share_adds_an_open_then_a_click() -> None:
    plan = plan_events("a@example.com", SandboxConfig(click_rate=1.0), random.Random(1))
    assert [e.type for e in plan] == ["email.sent", "email.delivered", "email.opened", "email.clicked"]
    assert plan[-1].extra["click"]["link"].startswith("https://")


def test_shares_are_drawn_in_proportion() -> None:
    rng = random.Random(3)
    config = SandboxConfig(open_rate=0.5)
    opened = sum(
        "email.opened" in [e.type for e in plan_events("a@example.com", config, rng)] for _ in range(2000)
    )
    assert 800 < opened < 1200
