"""The reputation guard's counts and states, kept as webhook events are applied (real PostgreSQL)."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from tests.reputation_helpers import (
    HARD_BOUNCE,
    SOFT_BOUNCE,
    apply,
    guard_audit,
    outcome_payloads,
    rates_of,
    sent_messages,
    state_of,
)
from tests.webhook_factories import T0, make_organization, resend_payload, store_event
from worker.events.tasks import process_batch

pytestmark = pytest.mark.integration

Factory = sessionmaker[Session]


def organization(factory: Factory):
    with transaction(factory) as session:
        return make_organization(session)


def test_below_the_minimum_volume_nothing_happens_whatever_the_rates(session_factory: Factory) -> None:
    org, connector = organization(session_factory)
    task, email_ids = sent_messages(session_factory, org, connector, 150)

    apply(session_factory, outcome_payloads(email_ids, hard=30, complained=5))

    assert rates_of(session_factory, org)["recipients"] == 150
    assert [state_of(session_factory, scope) for scope in (org, connector, task)] == ["ok", "ok", "ok"]
    assert guard_audit(session_factory, org) == []


def test_a_bounce_rate_at_the_warning_level_warns_and_is_audited(session_factory: Factory) -> None:
    org, connector = organization(session_factory)
    _, email_ids = sent_messages(session_factory, org, connector, 200)

    apply(session_factory, outcome_payloads(email_ids, hard=10))

    assert state_of(session_factory, org) == "warning"
    assert rates_of(session_factory, org)["bounce_rate"] == 0.05
    assert "reputation.warning" in guard_audit(session_factory, org)


def test_a_bounce_rate_at_the_pause_level_pauses_organization_connector_and_campaign(
    session_factory: Factory,
) -> None:
    org, connector = organization(session_factory)
    task, email_ids = sent_messages(session_factory, org, connector, 200)

    apply(session_factory, outcome_payloads(email_ids, hard=16))

    assert [state_of(session_factory, scope) for scope in (org, connector, task)] == ["paused"] * 3
    assert guard_audit(session_factory, org).count("reputation.pause") == 3


def test_a_complaint_rate_at_the_pause_level_pauses(session_factory: Factory) -> None:
    org, connector = organization(session_factory)
    _, email_ids = sent_messages(session_factory, org, connector, 300)

    apply(session_factory, outcome_payloads(email_ids, complained=1))

    assert rates_of(session_factory, org)["complaints"] == 1
    assert state_of(session_factory, org) == "paused"


def test_soft_bounces_count_the_recipient_but_not_as_hard_bounces(session_factory: Factory) -> None:
    org, connector = organization(session_factory)
    _, email_ids = sent_messages(session_factory, org, connector, 200)

    apply(
        session_factory, [resend_payload("bounced", email_id, bounce=SOFT_BOUNCE) for email_id in email_ids]
    )

    assert rates_of(session_factory, org) | {"evaluated_at": None} == {
        "recipients": 200,
        "hard_bounces": 0,
        "complaints": 0,
        "bounce_rate": 0.0,
        "complaint_rate": 0.0,
        "evaluated_at": None,
    }
    assert state_of(session_factory, org) == "ok"


def test_a_paused_scope_stays_paused_when_its_rate_drops(session_factory: Factory) -> None:
    org, connector = organization(session_factory)
    task, email_ids = sent_messages(session_factory, org, connector, 200)
    apply(session_factory, outcome_payloads(email_ids, hard=20))

    _, more = sent_messages(session_factory, org, connector, 400, task_id=task)
    apply(session_factory, outcome_payloads(more))

    assert rates_of(session_factory, org)["bounce_rate"] == pytest.approx(20 / 600, abs=1e-6)
    assert state_of(session_factory, org) == "paused"


def test_duplicate_and_out_of_order_events_count_each_recipient_once(session_factory: Factory) -> None:
    org, connector = organization(session_factory)
    _, email_ids = sent_messages(session_factory, org, connector, 200)
    payloads = []
    for i, email_id in enumerate(email_ids):
        payloads.append(resend_payload("sent", email_id, created_at=T0))
        if i < 10:  # a bounce, sent three times by Resend (three svix ids), before its delivery delay
            payloads += [resend_payload("bounced", email_id, bounce=HARD_BOUNCE)] * 3
            payloads.append(resend_payload("delivery_delayed", email_id))
        elif i < 12:  # a complaint that arrives before the delivery it follows, twice
            payloads += [resend_payload("complained", email_id)] * 2 + [resend_payload("delivered", email_id)]
        else:
            payloads += [resend_payload("delivered", email_id), resend_payload("opened", email_id)]
    random.Random(7).shuffle(payloads)

    apply(session_factory, payloads, batch=37)

    rates = rates_of(session_factory, org)
    assert (rates["recipients"], rates["hard_bounces"], rates["complaints"]) == (200, 10, 2)


def test_racing_workers_lose_no_count_and_never_deadlock(session_factory: Factory) -> None:
    org, connector = organization(session_factory)
    _, first = sent_messages(session_factory, org, connector, 200)
    _, second = sent_messages(session_factory, org, connector, 200)
    with transaction(session_factory) as session:
        ids = [
            str(store_event(session, payload))
            for payload in outcome_payloads(first, hard=7) + outcome_payloads(second, complained=3)
        ]
    batches = [ids[i::8] for i in range(8)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda batch: process_batch(session_factory, batch), batches))

    assert all(not retry for _, retry in results)
    rates = rates_of(session_factory, org)
    assert (rates["recipients"], rates["hard_bounces"], rates["complaints"]) == (400, 7, 3)
