"""Outcome events: a send naming ``outcomes_queue`` gets one event per recipient outcome, written in the
status change's own transaction (the outbox) and published at least once as ``pilot.outcome``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from marketing_pilot_client import OUTCOME, OutcomeEvent
from shared.db import transaction
from shared.models import OutcomeEvent as OutboxRow
from shared.outcome_publisher import publish_pending
from shared.sending import pipeline as sending
from shared.unsubscribe.actions import UnsubscribeSource, unsubscribe
from shared.unsubscribe.tokens import UnsubscribeToken
from shared.unsubscribe.topics import Scope
from tests.send_helpers import add_connector, add_suppressions, rows, send_payload
from tests.webhook_factories import resend_payload, store_event
from worker.events.processing import process_event

pytestmark = pytest.mark.integration

QUEUE = "shop.pilot-outcomes"


class RecordingSender:
    """A Celery app's ``send_task``, recorded; ``fail_after`` publishes succeed, then the broker is away."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail_after = fail_after

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise ConnectionError("broker away")
        self.sent.append({"name": name, "kwargs": kwargs, **options})
        return None

    def events(self) -> list[OutcomeEvent]:
        return [OutcomeEvent.model_validate(call["kwargs"]) for call in self.sent]


def kinds(sender: RecordingSender) -> list[tuple[str, str]]:
    return sorted((event.recipient, event.kind.value) for event in sender.events())


def test_events_carry_the_callers_correlation_and_go_to_its_queue(ctx, resend, factory) -> None:
    _, connector = add_connector(factory)
    task_id = uuid.uuid4()
    payload = send_payload(
        connector,
        ["ada@example.test", "grace@example.test"],
        task_id=str(task_id),
        idempotency_key="order/4711",
        metadata={"order": "4711"},
        outcomes_queue=QUEUE,
    )
    sending.send_email(ctx, payload, task_ref="t1")
    sender = RecordingSender()

    assert publish_pending(factory, sender) == 4

    assert kinds(sender) == [
        ("ada@example.test", "queued"),
        ("ada@example.test", "sent"),
        ("grace@example.test", "queued"),
        ("grace@example.test", "sent"),
    ]
    assert {(call["name"], call["queue"]) for call in sender.sent} == {(OUTCOME, QUEUE)}
    for call, event in zip(sender.sent, sender.events(), strict=True):
        assert call["task_id"] == str(event.event_id)
        assert (event.task_id, event.idempotency_key, event.metadata) == (
            task_id,
            "order/4711",
            {"order": "4711"},
        )
        assert event.connector_id == connector


def test_suppressed_and_failed_recipients_are_reported_with_the_reason(ctx, resend, factory) -> None:
    organization, connector = add_connector(factory)
    add_suppressions(factory, organization, ["gone@example.test"])

    sending.send_email(ctx, send_payload(connector, "gone@example.test", outcomes_queue=QUEUE), task_ref="t1")
    sending.send_email(
        ctx, send_payload(connector, "bad@example.test", subject="", outcomes_queue=QUEUE), task_ref="t2"
    )
    sender = RecordingSender()
    publish_pending(factory, sender)

    by_recipient = {event.recipient: event for event in sender.events()}
    assert by_recipient["gone@example.test"].kind == "suppressed"
    assert by_recipient["bad@example.test"].kind == "failed"
    assert "subject" in (by_recipient["bad@example.test"].reason or "")


def test_webhook_events_are_reported_once_each(ctx, resend, factory) -> None:
    _, connector = add_connector(factory)
    sending.send_email(ctx, send_payload(connector, "ada@example.test", outcomes_queue=QUEUE), task_ref="t1")
    [row] = rows(factory, connector)
    publish_pending(factory, RecordingSender())
    for event_type in ("delivered", "opened", "clicked"):
        with transaction(factory) as session:
            event_id = store_event(
                session,
                resend_payload(event_type, row.resend_email_id or "", recipient="ada@example.test"),
            )
        process_event(factory, event_id)
        process_event(factory, event_id)  # a replay reports nothing new
    sender = RecordingSender()

    publish_pending(factory, sender)

    assert [event.kind.value for event in sender.events()] == ["delivered", "opened", "clicked"]
    assert all(event.resend_id == row.resend_email_id for event in sender.events())


def test_an_unsubscribe_is_reported_with_the_topic_left(ctx, resend, factory) -> None:
    organization, connector = add_connector(factory)
    payload = send_payload(connector, "ada@example.test", topic="newsletter", outcomes_queue=QUEUE)
    sending.send_email(ctx, payload, task_ref="t1")
    [row] = rows(factory, connector)
    publish_pending(factory, RecordingSender())
    token = UnsubscribeToken(organization, row.id, "ada@example.test", "newsletter")
    with transaction(factory) as session:
        unsubscribe(session, token, Scope.TOPIC, source=UnsubscribeSource.ONE_CLICK, now=datetime.now(UTC))
    sender = RecordingSender()

    publish_pending(factory, sender)

    assert [(event.kind.value, event.reason) for event in sender.events()] == [("unsubscribed", "newsletter")]


def test_a_send_without_outcomes_queue_writes_no_events(ctx, resend, factory) -> None:
    _, connector = add_connector(factory)
    sending.send_email(ctx, send_payload(connector, ["a@example.test", "b@example.test"]), task_ref="t1")

    ids = [row.id for row in rows(factory, connector)]
    with factory() as session:
        assert session.scalar(select(func.count()).where(OutboxRow.message_id.in_(ids))) == 0


def test_events_the_broker_did_not_take_are_published_again_with_the_same_ids(ctx, resend, factory) -> None:
    _, connector = add_connector(factory)
    sending.send_email(
        ctx,
        send_payload(connector, ["a@example.test", "b@example.test"], outcomes_queue=QUEUE),
        task_ref="t1",
    )
    failing = RecordingSender(fail_after=1)

    assert publish_pending(factory, failing) == 1
    again = RecordingSender()
    assert publish_pending(factory, again) == 3
    assert publish_pending(factory, RecordingSender()) == 0

    ids = [event.event_id for event in failing.events() + again.events()]
    assert len(set(ids)) == 4


@pytest.mark.parametrize("queue", ["pilot.sends", "celery", "has space", ""])
def test_an_outcomes_queue_of_ours_or_malformed_is_refused_naming_the_field(
    ctx, resend, factory, queue
) -> None:
    _, connector = add_connector(factory)

    outcome = sending.send_email(
        ctx, send_payload(connector, "a@example.test", outcomes_queue=queue), task_ref="t"
    )

    assert outcome.counts() == {"failed": 1}
    assert "outcomes_queue" in (outcome.results[0].reason or "")


def test_a_scheduled_send_is_reported_scheduled_until_its_time(ctx, resend, factory, clock) -> None:
    _, connector = add_connector(factory)
    at = clock.now + timedelta(minutes=10)
    payload = send_payload(connector, "ada@example.test", scheduled_at=at.isoformat(), outcomes_queue=QUEUE)
    sending.send_email(ctx, payload, task_ref="t1")
    sender = RecordingSender()

    publish_pending(factory, sender)

    [event] = sender.events()
    assert (event.kind, event.until) == ("scheduled", at)


def test_a_cancelled_send_is_reported_cancelled_naming_who_cancelled(ctx, resend, factory, clock) -> None:
    _, connector = add_connector(factory)
    at = (clock.now + timedelta(minutes=10)).isoformat()
    payload = send_payload(connector, "ada@example.test", scheduled_at=at, outcomes_queue=QUEUE)
    sending.send_email(ctx, {**payload, "idempotency_key": "campaign/9"}, task_ref="t1")
    publish_pending(factory, RecordingSender())

    sending.cancel(ctx, {"connector_id": str(connector), "idempotency_key": "campaign/9"}, actor="support")
    sender = RecordingSender()
    publish_pending(factory, sender)

    [event] = sender.events()
    assert (event.kind, event.reason, event.idempotency_key) == (
        "cancelled",
        "cancelled by support",
        "campaign/9",
    )
