"""A campaign is judged on its last recipients (slices of 100, kept as events are applied), so a bad
segment late in a large campaign is caught too (real PostgreSQL)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from shared.models import EmailMessage, MessageMark, ReputationCount
from shared.reputation import guard
from tests.reputation_helpers import (
    HARD_BOUNCE,
    apply,
    outcome_payloads,
    rates_of,
    sent_messages,
    state_of,
)
from tests.webhook_factories import T0, make_organization, resend_payload

pytestmark = pytest.mark.integration

Factory = sessionmaker[Session]


def organization(factory: Factory) -> tuple[uuid.UUID, uuid.UUID]:
    with transaction(factory) as session:
        return make_organization(session)


def every_fifth_bounces(email_ids: list[str]) -> list[dict]:
    return [
        resend_payload("bounced", email_id, bounce=HARD_BOUNCE)
        if i % 5 == 0
        else resend_payload("delivered", email_id)
        for i, email_id in enumerate(email_ids)
    ]


def campaign_counts(factory: Factory, task: uuid.UUID) -> dict[int, tuple[int, int, int]]:
    """The campaign's counts by bucket (0: its total; 1, 2...: its slices)."""
    with factory() as session:
        found = session.scalars(select(ReputationCount).where(ReputationCount.scope_id == task)).all()
        return {row.bucket: (row.recipients, row.hard_bounces, row.complaints) for row in found}


def test_a_clean_start_then_a_bouncing_segment_pauses_the_campaign(session_factory: Factory) -> None:
    org, connector = organization(session_factory)
    task, clean = sent_messages(session_factory, org, connector, 2000)
    apply(session_factory, outcome_payloads(clean))
    _, segment = sent_messages(session_factory, org, connector, 500, task_id=task)

    apply(session_factory, every_fifth_bounces(segment))

    assert state_of(session_factory, task) == "paused"
    # Over all 2,500 recipients the rate is 4 %: the organization only warns.
    assert rates_of(session_factory, org)["bounce_rate"] == 0.04
    assert state_of(session_factory, org) == "warning"


def test_the_campaign_window_holds_its_last_thousand_recipients_up_to_a_slice_more(
    session_factory: Factory,
) -> None:
    org, connector = organization(session_factory)
    task, email_ids = sent_messages(session_factory, org, connector, 1250)

    apply(session_factory, outcome_payloads(email_ids))

    assert 1000 <= rates_of(session_factory, task)["recipients"] < 1100
    assert campaign_counts(session_factory, task)[0] == (1250, 0, 0)


def test_duplicate_and_out_of_order_events_keep_the_campaign_slices_right(session_factory: Factory) -> None:
    org, connector = organization(session_factory)
    task, email_ids = sent_messages(session_factory, org, connector, 300)
    payloads = []
    for i, email_id in enumerate(email_ids):
        payloads.append(resend_payload("sent", email_id, created_at=T0))
        if i < 10:  # a hard bounce Resend sent three times, then a late delivery delay
            payloads += [resend_payload("bounced", email_id, bounce=HARD_BOUNCE)] * 3
            payloads.append(resend_payload("delivery_delayed", email_id))
        elif i < 14:  # a complaint before the delivery it follows, twice
            payloads += [resend_payload("complained", email_id)] * 2 + [resend_payload("delivered", email_id)]
        else:
            payloads += [resend_payload("delivered", email_id)] * 2
    random.Random(11).shuffle(payloads)

    apply(session_factory, payloads, batch=37)

    counts = campaign_counts(session_factory, task)
    assert counts[0] == (300, 10, 4)
    assert {bucket: values[0] for bucket, values in counts.items() if bucket > 0} == {1: 100, 2: 100, 3: 100}
    slices_total = [sum(values[i] for bucket, values in counts.items() if bucket > 0) for i in range(3)]
    assert slices_total == [300, 10, 4]
    with session_factory() as session:
        slices = session.scalars(
            select(MessageMark.campaign_bucket)
            .join(EmailMessage, EmailMessage.id == MessageMark.message_id)
            .where(EmailMessage.task_id == task)
        ).all()
    assert sorted(slices) == [1] * 100 + [2] * 100 + [3] * 100


def test_a_resumed_campaign_is_judged_on_its_recipients_after_the_resume(session_factory: Factory) -> None:
    org, connector = organization(session_factory)
    task, email_ids = sent_messages(session_factory, org, connector, 250)
    apply(session_factory, outcome_payloads(email_ids, hard=50))
    assert state_of(session_factory, task) == "paused"
    with transaction(session_factory) as session:
        guard.resume(session, org, actor="ops", now=datetime.now(UTC))

    _, more = sent_messages(session_factory, org, connector, 120, task_id=task)
    apply(session_factory, outcome_payloads(more))

    assert rates_of(session_factory, task)["recipients"] == 120
    assert state_of(session_factory, task) == "ok"
