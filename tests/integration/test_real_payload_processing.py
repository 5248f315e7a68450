"""Every real Resend webhook body we hold, applied to a ledger row of its email on the real PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.models import EmailMetric, WebhookEvent
from shared.resend_events import parse_event
from tests.real_payloads import payload_names, real_payload
from tests.webhook_factories import make_ledger, store_event
from worker.events.processing import apply_event

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", payload_names())
def test_apply_event_processes_every_real_payload_into_one_metric_row(db_session: Session, name: str) -> None:
    payload = real_payload(name)
    parsed = parse_event(payload)
    sent = make_ledger(db_session, recipient="Someone@Example.com", resend_email_id=parsed.email_id)
    event_id = store_event(db_session, payload)
    event = db_session.get_one(WebhookEvent, event_id)

    outcome = apply_event(db_session, event)

    assert (outcome.kind, outcome.message_id) == ("applied", sent.message_id)
    metric = db_session.scalars(select(EmailMetric).where(EmailMetric.webhook_event_id == event_id)).one()
    assert metric.event == parsed.type.value
    assert metric.recipient == (parsed.recipient or "someone@example.com")
    assert metric.occurred_at == (parsed.created_at or event.received_at)
    assert event.processed_at is not None and event.error is None
