"""The guard's state changes go to the upstream app as outcome events (``reputation_*``), on the queues
its counted sends named, through the outbox (real PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from marketing_pilot_client import OUTCOME, OutcomeEvent, OutcomeKind
from shared.db import transaction
from shared.models import OutcomeEvent as OutboxRow
from shared.outcome_publisher import publish_pending
from shared.reputation import guard
from tests.integration.test_outcome_events import RecordingSender
from tests.reputation_helpers import apply, guard_audit, outcome_payloads, sent_messages, state_of
from tests.webhook_factories import make_organization

pytestmark = pytest.mark.integration

Factory = sessionmaker[Session]
QUEUE = "shop.pilot-outcomes"


def organization(factory: Factory) -> tuple[uuid.UUID, uuid.UUID]:
    with transaction(factory) as session:
        return make_organization(session)


def reputation_events(factory: Factory) -> list[OutcomeEvent]:
    sender = RecordingSender()
    publish_pending(factory, sender)
    assert {(call["name"], call["queue"]) for call in sender.sent} <= {(OUTCOME, QUEUE)}
    return [event for event in sender.events() if event.kind.startswith("reputation_")]


def told(events: list[OutcomeEvent]) -> set[tuple[str, str | None, uuid.UUID | None]]:
    return {(event.kind.value, event.scope, event.scope_id) for event in events}


def test_a_warning_is_told_for_each_scope_on_the_queue_its_sends_named(session_factory: Factory) -> None:
    org, connector = organization(session_factory)
    task, email_ids = sent_messages(session_factory, org, connector, 200, outcomes_queue=QUEUE)

    apply(session_factory, outcome_payloads(email_ids, hard=10))

    events = reputation_events(session_factory)
    assert told(events) == {
        ("reputation_warning", "organization", org),
        ("reputation_warning", "connector", connector),
        ("reputation_warning", "campaign", task),
    }
    by_scope = {event.scope: event for event in events}
    assert all(event.organization_id == org and event.message_id is None for event in events)
    assert by_scope["connector"].connector_id == connector
    assert by_scope["campaign"].task_id == task
    assert by_scope["organization"].rates == {
        "recipients": 200,
        "hard_bounces": 10,
        "complaints": 0,
        "bounce_rate": 0.05,
        "complaint_rate": 0.0,
    }
    assert "hard bounces 5.00 %" in (by_scope["organization"].reason or "")


def test_a_pause_is_told_with_the_hold_reason(session_factory: Factory) -> None:
    org, connector = organization(session_factory)
    _, email_ids = sent_messages(session_factory, org, connector, 200, outcomes_queue=QUEUE)

    apply(session_factory, outcome_payloads(email_ids, hard=20))

    events = [event for event in reputation_events(session_factory) if event.scope == "organization"]
    assert [event.kind for event in events] == [OutcomeKind.REPUTATION_PAUSED]
    assert (events[0].reason or "").startswith(guard.HOLD_PREFIX)


def test_a_warning_whose_rates_drop_back_is_audited_and_told(session_factory: Factory) -> None:
    org, connector = organization(session_factory)
    task, email_ids = sent_messages(session_factory, org, connector, 200, outcomes_queue=QUEUE)
    apply(session_factory, outcome_payloads(email_ids, hard=10))

    _, more = sent_messages(session_factory, org, connector, 400, task_id=task, outcomes_queue=QUEUE)
    apply(session_factory, outcome_payloads(more))

    assert state_of(session_factory, org) == "ok"
    assert guard_audit(session_factory, org).count("reputation.ok") == 3
    assert ("reputation_ok", "organization", org) in told(reputation_events(session_factory))


def test_a_resume_is_told_for_each_scope_it_lifts(session_factory: Factory) -> None:
    org, connector = organization(session_factory)
    task, email_ids = sent_messages(session_factory, org, connector, 200, outcomes_queue=QUEUE)
    apply(session_factory, outcome_payloads(email_ids, hard=20))
    reputation_events(session_factory)  # the pauses, published

    with transaction(session_factory) as session:
        guard.resume(session, org, actor="ops", now=datetime.now(UTC), reason="list cleaned")

    events = reputation_events(session_factory)
    assert told(events) == {
        ("reputation_resumed", "organization", org),
        ("reputation_resumed", "connector", connector),
        ("reputation_resumed", "campaign", task),
    }
    assert {event.reason for event in events} == {"list cleaned"}
    assert {event.rates["hard_bounces"] for event in events if event.rates} == {20}


def test_sends_without_an_outcomes_queue_get_no_reputation_events(session_factory: Factory) -> None:
    org, connector = organization(session_factory)
    _, email_ids = sent_messages(session_factory, org, connector, 200)

    apply(session_factory, outcome_payloads(email_ids, hard=20))

    assert state_of(session_factory, org) == "paused"
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(OutboxRow)) == 0
