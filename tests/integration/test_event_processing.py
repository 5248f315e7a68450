"""worker.events.processing on the real PostgreSQL, every event in its own committed transaction."""

from __future__ import annotations

import itertools
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from shared.models import EmailMessage, EmailMetric, Suppression, Task, WebhookEvent
from tests.real_payloads import real_payload
from tests.webhook_factories import T0, Ledger, make_ledger, make_message, resend_payload, store_event
from worker.events.processing import NotInLedgerYet, Outcome, process_event, process_events
from worker.events.tasks import process_batch, process_pending_events

Factory = sessionmaker[Session]


def ledger(factory: Factory, **kwargs: Any) -> Ledger:
    with transaction(factory) as session:
        return make_ledger(session, **kwargs)


def deliver(factory: Factory, payload: dict[str, Any], **kwargs: Any) -> Outcome:
    """Store ``payload`` as a webhook event and process it, each in its own transaction."""
    with transaction(factory) as session:
        event_id = store_event(session, payload)
    return process_event(factory, event_id, **kwargs)


def message_status(factory: Factory, message_id: uuid.UUID) -> str:
    with factory() as session:
        return session.get_one(EmailMessage, message_id).status


def delivery(factory: Factory, task_id: uuid.UUID) -> dict[str, Any]:
    with factory() as session:
        result: dict[str, Any] = session.get_one(Task, task_id).execution_result
        return result


def metric_count(factory: Factory) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(EmailMetric)) or 0


def suppressions(factory: Factory) -> list[tuple[str, str, bool]]:
    with factory() as session:
        rows = session.scalars(select(Suppression).order_by(Suppression.email)).all()
        return [(row.email, row.reason, row.expires_at is not None) for row in rows]


def test_process_event_delivered_writes_metric_status_and_task_metrics(session_factory: Factory) -> None:
    sent = ledger(session_factory)
    outcome = deliver(session_factory, resend_payload("delivered", sent.resend_email_id))
    assert outcome == Outcome("applied", message_id=sent.message_id, status="delivered")
    assert message_status(session_factory, sent.message_id) == "delivered"
    with session_factory() as session:
        metric = session.scalars(select(EmailMetric)).one()
        event = session.scalars(select(WebhookEvent)).one()
    assert (metric.event, metric.recipient, metric.subject, metric.status) == (
        "delivered",
        "someone@example.com",
        "Hello",
        "delivered",
    )
    assert (metric.task_id, metric.connector_id, metric.occurred_at) == (sent.task_id, sent.connector_id, T0)
    assert metric.metadata_["svix_id"] == event.svix_id
    assert event.processed_at is not None and event.error is None and event.attempts == 1
    assert delivery(session_factory, sent.task_id)["delivery"]["delivered"] == 1


def test_process_event_task_metrics_merge_keeps_the_workers_keys(session_factory: Factory) -> None:
    sent = ledger(session_factory)
    deliver(session_factory, resend_payload("sent", sent.resend_email_id))
    assert delivery(session_factory, sent.task_id)["send"] == {"sent": 1}


def test_process_event_twice_is_already_processed(session_factory: Factory) -> None:
    sent = ledger(session_factory)
    with transaction(session_factory) as session:
        event_id = store_event(session, resend_payload("delivered", sent.resend_email_id))
    process_event(session_factory, event_id)
    assert process_event(session_factory, event_id).kind == "already_processed"
    assert metric_count(session_factory) == 1


def test_process_event_concurrently_inserts_one_metric(session_factory: Factory) -> None:
    sent = ledger(session_factory)
    with transaction(session_factory) as session:
        event_id = store_event(session, resend_payload("opened", sent.resend_email_id))
    with ThreadPoolExecutor(max_workers=8) as pool:
        kinds = sorted(pool.map(lambda _: process_event(session_factory, event_id).kind, range(16)))
    assert kinds.count("applied") == 1
    assert metric_count(session_factory) == 1
    assert delivery(session_factory, sent.task_id)["delivery"]["opened_total"] == 1


def test_process_event_concurrent_events_of_one_task_all_counted(session_factory: Factory) -> None:
    first = ledger(session_factory)
    with transaction(session_factory) as session:
        others = [
            make_message(session, first.organization_id, first.connector_id, task_id=first.task_id)
            for _ in range(19)
        ]
        event_ids = [
            store_event(session, resend_payload("delivered", sent.resend_email_id))
            for sent in [first, *others]
        ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda event_id: process_event(session_factory, event_id), event_ids))
    assert delivery(session_factory, first.task_id)["delivery"]["delivered"] == 20


FIVE = [
    ("sent", {}),
    ("delivery_delayed", {}),
    ("delivered", {}),
    ("opened", {}),
    ("bounced", {"bounce": {"type": "Permanent", "subType": "General", "message": "550 5.1.1"}}),
]


def test_process_event_all_120_arrival_orders_end_alike(session_factory: Factory) -> None:
    finals = set()
    for order in itertools.permutations(range(len(FIVE))):
        sent = ledger(session_factory, recipient=f"bounced+{uuid.uuid4().hex[:8]}@resend.dev")
        for index in order:
            event_type, extra = FIVE[index]
            created_at = T0 + timedelta(seconds=10 * index)
            payload = resend_payload(event_type, sent.resend_email_id, created_at=created_at, **extra)
            deliver(session_factory, payload)
        metrics = delivery(session_factory, sent.task_id)["delivery"]
        finals.add((message_status(session_factory, sent.message_id), repr(sorted(metrics.items()))))
    assert len(finals) == 1
    status, metrics = finals.pop()
    assert status == "bounced"
    assert "('delivered', 1)" in metrics and "('bounced_hard', 1)" in metrics and "('delayed', 1)" in metrics
    assert {reason for _, reason, _ in suppressions(session_factory)} == {"hard_bounce"}
    assert len(suppressions(session_factory)) == 120


def test_process_event_metrics_count_unique_and_total_opens(session_factory: Factory) -> None:
    sent = ledger(session_factory)
    for event_type in ("sent", "delivered", "opened", "opened", "clicked"):
        deliver(session_factory, resend_payload(event_type, sent.resend_email_id))
    metrics = delivery(session_factory, sent.task_id)["delivery"]
    assert (metrics["opened_unique"], metrics["opened_total"], metrics["clicked_unique"]) == (1, 2, 1)
    assert metrics["rates"]["open_rate"] == {
        "value": 1.0,
        "numerator": "opened_unique",
        "denominator": "delivered",
    }
    assert metrics["rates"]["complaint_rate"]["value"] == 0.0


def test_process_event_rates_without_denominator_are_none(session_factory: Factory) -> None:
    sent = ledger(session_factory)
    deliver(session_factory, resend_payload("sent", sent.resend_email_id))
    rates = delivery(session_factory, sent.task_id)["delivery"]["rates"]
    assert rates["delivery_rate"]["value"] == 0.0
    assert rates["open_rate"]["value"] is None


@pytest.mark.parametrize(
    ("event_type", "extra", "reason"),
    [
        ("bounced", {"bounce": {"type": "Permanent", "subType": "NoEmail"}}, "hard_bounce"),
        ("complained", {}, "spam_complaint"),
        (
            "suppressed",
            {"suppressed": {"type": "OnAccountSuppressionList", "reason": "previous_bounce"}},
            "provider_suppressed",
        ),
    ],
)
def test_process_event_suppresses_the_recipient(
    session_factory: Factory, event_type: str, extra: dict[str, Any], reason: str
) -> None:
    sent = ledger(session_factory, recipient="Someone@Example.COM")
    outcome = deliver(session_factory, resend_payload(event_type, sent.resend_email_id, **extra))
    assert outcome.suppression == reason
    assert suppressions(session_factory) == [("someone@example.com", reason, False)]


@pytest.mark.parametrize("bounce_type", ["Transient", "Undetermined"])
def test_process_event_one_soft_bounce_does_not_suppress(session_factory: Factory, bounce_type: str) -> None:
    sent = ledger(session_factory)
    deliver(session_factory, resend_payload("bounced", sent.resend_email_id, bounce={"type": bounce_type}))
    assert suppressions(session_factory) == []
    assert message_status(session_factory, sent.message_id) == "bounced"


def soft_bounces(factory: Factory, hours: list[float], *, delivered_at: float | None = None) -> list[Outcome]:
    """Soft bounces of one address (varying case) on separate messages and tasks of one organization."""
    first = ledger(factory, recipient="flaky@example.com")
    outcomes = []
    events = [("bounced", h) for h in hours] + (
        [("delivered", delivered_at)] if delivered_at is not None else []
    )
    for index, (event_type, hour) in enumerate(sorted(events, key=lambda e: e[1])):
        with transaction(factory) as session:
            recipient = "FLAKY@example.com" if index % 2 else "flaky@example.com"
            sent = make_message(session, first.organization_id, first.connector_id, recipient=recipient)
        extra = {"bounce": {"type": "Transient", "subType": "MailboxFull"}} if event_type == "bounced" else {}
        created_at = T0 + timedelta(hours=hour)
        outcomes.append(
            deliver(factory, resend_payload(event_type, sent.resend_email_id, created_at=created_at, **extra))
        )
    return outcomes


def test_process_event_three_soft_bounces_over_72_hours_suppress_for_30_days(
    session_factory: Factory,
) -> None:
    outcomes = soft_bounces(session_factory, [0, 36, 72])
    assert [o.suppression for o in outcomes] == [None, None, "soft_bounce"]
    with session_factory() as session:
        entry = session.scalars(select(Suppression)).one()
    assert (entry.email, entry.reason) == ("flaky@example.com", "soft_bounce")
    assert entry.expires_at == T0 + timedelta(hours=72, days=30)


@pytest.mark.parametrize(
    ("hours", "delivered_at"),
    [([0, 36, 71], None), ([0, 72], None), ([0, 36, 72], 50)],
    ids=["short-span", "two-only", "delivery-between"],
)
def test_process_event_soft_bounces_short_of_the_policy_do_not_suppress(
    session_factory: Factory, hours: list[float], delivered_at: float | None
) -> None:
    soft_bounces(session_factory, hours, delivered_at=delivered_at)
    assert suppressions(session_factory) == []


def test_process_event_unknown_type_is_acknowledged_without_metric(session_factory: Factory) -> None:
    outcome = deliver(session_factory, {"type": "contact.created", "data": {"id": "x"}})
    assert outcome.kind == "ignored"
    assert metric_count(session_factory) == 0
    with session_factory() as session:
        assert session.scalars(select(WebhookEvent.processed_at)).one() is not None


def test_process_event_email_not_in_ledger_yet_raises_and_counts_the_attempt(
    session_factory: Factory,
) -> None:
    with pytest.raises(NotInLedgerYet):
        deliver(session_factory, resend_payload("delivered", str(uuid.uuid4())))
    with session_factory() as session:
        event = session.scalars(select(WebhookEvent)).one()
    assert (event.processed_at, event.attempts) == (None, 1)
    assert event.error is not None and event.error.startswith("NotInLedgerYet")


def test_process_event_old_unknown_email_is_kept_as_orphan(session_factory: Factory) -> None:
    with transaction(session_factory) as session:
        event_id = store_event(session, resend_payload("delivered", "nobody-knows"))
        received_at = session.get_one(WebhookEvent, event_id).received_at
    outcome = process_event(session_factory, event_id, now=received_at + timedelta(minutes=11))
    assert outcome.kind == "orphan"
    with session_factory() as session:
        event = session.get_one(WebhookEvent, event_id)
    assert event.processed_at is not None
    assert event.error is not None and event.error.startswith("orphan: no ledger row for email nobody-knows")
    assert metric_count(session_factory) == 0


def test_process_event_webhook_before_ledger_commit_applies_once_committed(session_factory: Factory) -> None:
    # Given a message still `sending`, its Resend id not committed, and the event tagged with its id
    sending = ledger(session_factory, status="sending", resend_email_id=None)
    email_id = str(uuid.uuid4())
    payload = resend_payload("delivered", email_id, tags={"message_id": str(sending.message_id)})
    with transaction(session_factory) as session:
        event_id = store_event(session, payload)
    # When the event is processed first: it waits
    with pytest.raises(NotInLedgerYet):
        process_event(session_factory, event_id)
    # Then once the worker commits `sent` and the id, the retry applies it
    with transaction(session_factory) as session:
        message = session.get_one(EmailMessage, sending.message_id)
        message.status, message.resend_email_id = "sent", email_id
    assert process_event(session_factory, event_id).status == "delivered"


def test_process_event_correlates_by_message_id_tag(session_factory: Factory) -> None:
    sent = ledger(session_factory, resend_email_id=None)
    email_id = str(uuid.uuid4())
    tags = {"message_id": str(sent.message_id), "task_id": str(sent.task_id)}
    assert (
        deliver(session_factory, resend_payload("delivered", email_id, tags=tags)).message_id
        == sent.message_id
    )
    with session_factory() as session:
        assert session.get_one(EmailMessage, sent.message_id).resend_email_id == email_id


def test_process_event_correlates_by_task_id_tag_and_recipient(session_factory: Factory) -> None:
    sent = ledger(session_factory, resend_email_id=None, recipient="Unique@Example.com")
    payload = resend_payload(
        "delivered", str(uuid.uuid4()), recipient="unique@example.com", tags={"task_id": str(sent.task_id)}
    )
    assert deliver(session_factory, payload).message_id == sent.message_id


def test_process_event_in_flight_message_is_adopted_on_the_last_chance(session_factory: Factory) -> None:
    sending = ledger(session_factory, status="sending", resend_email_id=None)
    payload = resend_payload("delivered", str(uuid.uuid4()), tags={"message_id": str(sending.message_id)})
    with transaction(session_factory) as session:
        event_id = store_event(session, payload)
        received_at = session.get_one(WebhookEvent, event_id).received_at
    outcome = process_event(session_factory, event_id, now=received_at + timedelta(minutes=11))
    assert (outcome.kind, outcome.status) == ("applied", "delivered")


def test_process_pending_events_enqueues_old_unprocessed_events_only(session_factory: Factory) -> None:
    sent = ledger(session_factory)
    with transaction(session_factory) as session:
        old = store_event(session, resend_payload("sent", sent.resend_email_id), received_at=T0)
        done = store_event(session, resend_payload("opened", sent.resend_email_id), received_at=T0)
        store_event(
            session, resend_payload("clicked", sent.resend_email_id), received_at=T0 + timedelta(hours=1)
        )
    process_event(session_factory, done)
    enqueued: list[str] = []
    assert process_pending_events(session_factory, enqueued.append, now=T0 + timedelta(minutes=5)) == 1
    assert enqueued == [str(old)]


def test_process_batch_applies_each_event_and_returns_the_ones_to_retry(session_factory: Factory) -> None:
    sent = ledger(session_factory)
    with transaction(session_factory) as session:
        known = str(store_event(session, resend_payload("delivered", sent.resend_email_id)))
        unknown = str(store_event(session, resend_payload("delivered", "not-yet")))
    outcomes, retry = process_batch(session_factory, [known, unknown, "not-a-uuid"])
    assert outcomes == {"applied": 1, "retry": 1, "error": 1}
    assert retry == [unknown]


def store_all(factory: Factory, payloads: list[dict[str, Any]]) -> list[uuid.UUID]:
    with transaction(factory) as session:
        return [store_event(session, payload) for payload in payloads]


def test_process_events_applies_a_batch_and_counts_each_task_once(session_factory: Factory) -> None:
    first = ledger(session_factory)
    with transaction(session_factory) as session:
        others = [
            make_message(session, first.organization_id, first.connector_id, task_id=first.task_id)
            for _ in range(9)
        ]
    event_ids = store_all(
        session_factory,
        [
            resend_payload(kind, sent.resend_email_id)
            for sent in [first, *others]
            for kind in ("sent", "delivered")
        ],
    )
    batch = process_events(session_factory, event_ids)
    assert {outcome.kind for outcome in batch.outcomes.values()} == {"applied"} and not batch.not_in_ledger
    assert delivery(session_factory, first.task_id)["delivery"]["delivered"] == 10
    assert {message_status(session_factory, sent.message_id) for sent in [first, *others]} == {"delivered"}


def test_process_events_leaves_unknown_emails_unprocessed_and_counts_the_attempt(
    session_factory: Factory,
) -> None:
    sent = ledger(session_factory)
    known, unknown = store_all(
        session_factory,
        [resend_payload("delivered", sent.resend_email_id), resend_payload("delivered", "not-yet")],
    )
    batch = process_events(session_factory, [known, unknown])
    assert batch.not_in_ledger == [unknown] and batch.outcomes[known].kind == "applied"
    with session_factory() as session:
        event = session.get_one(WebhookEvent, unknown)
    assert (event.processed_at, event.attempts) == (None, 1)
    assert event.error is not None and event.error.startswith("NotInLedgerYet")


def test_process_events_processed_ids_are_already_processed(session_factory: Factory) -> None:
    sent = ledger(session_factory)
    (event_id,) = store_all(session_factory, [resend_payload("delivered", sent.resend_email_id)])
    process_events(session_factory, [event_id])
    assert process_events(session_factory, [event_id]).outcomes[event_id].kind == "already_processed"
    assert metric_count(session_factory) == 1


def test_process_events_overlapping_batches_concurrently_apply_each_event_once(
    session_factory: Factory,
) -> None:
    first = ledger(session_factory)
    with transaction(session_factory) as session:
        others = [
            make_message(session, first.organization_id, first.connector_id, task_id=first.task_id)
            for _ in range(19)
        ]
    event_ids = store_all(
        session_factory, [resend_payload("delivered", sent.resend_email_id) for sent in [first, *others]]
    )
    batches = [event_ids, event_ids[::-1], event_ids[5:], event_ids[:15]]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda ids: process_batch(session_factory, [str(i) for i in ids]), batches))
    assert sum(outcomes.get("applied", 0) for outcomes, _ in results) == 20
    assert metric_count(session_factory) == 20
    assert delivery(session_factory, first.task_id)["delivery"]["delivered"] == 20


def test_process_events_one_batch_of_five_ends_as_one_by_one(session_factory: Factory) -> None:
    sent = ledger(session_factory, recipient="bounced+batch@resend.dev")
    payloads = [
        resend_payload(kind, sent.resend_email_id, created_at=T0 + timedelta(seconds=10 * index), **extra)
        for index, (kind, extra) in enumerate(FIVE)
    ]
    process_events(session_factory, store_all(session_factory, payloads[::-1]))
    metrics = delivery(session_factory, sent.task_id)["delivery"]
    assert message_status(session_factory, sent.message_id) == "bounced"
    assert (metrics["delivered"], metrics["bounced_hard"], metrics["delayed"]) == (1, 1, 1)
    assert suppressions(session_factory) == [("bounced+batch@resend.dev", "hard_bounce", False)]


def test_process_event_scheduled_writes_a_metric_row_and_keeps_the_status(session_factory: Factory) -> None:
    sent = ledger(session_factory)
    outcome = deliver(session_factory, resend_payload("scheduled", sent.resend_email_id))
    assert (outcome.kind, outcome.message_id, outcome.status) == ("applied", sent.message_id, "sent")
    with session_factory() as session:
        metric = session.scalars(select(EmailMetric)).one()
    assert (metric.event, metric.message_id, metric.status) == ("scheduled", sent.message_id, None)
    assert delivery(session_factory, sent.task_id)["delivery"]["events"] == 1


@pytest.mark.parametrize(
    "name",
    ["anymail-email-bounced-hard-without-type.json", "anymail-email-bounced-suppressed-without-type.json"],
)
def test_process_event_bounce_without_type_whose_message_is_permanent_suppresses_at_once(
    session_factory: Factory, name: str
) -> None:
    payload = real_payload(name)
    recipient = payload["data"]["to"][0]
    sent = ledger(session_factory, recipient=recipient, resend_email_id=payload["data"]["email_id"])
    outcome = deliver(session_factory, payload)
    assert outcome.suppression == "hard_bounce"
    assert suppressions(session_factory) == [(recipient, "hard_bounce", False)]
    with session_factory() as session:
        metadata = session.scalars(select(EmailMetric.metadata_)).one()
    assert (metadata["bounce_type"], metadata["bounce_type_source"]) == ("Permanent", "message")
    assert delivery(session_factory, sent.task_id)["delivery"]["bounced_hard"] == 1


def test_process_event_metric_recipient_is_the_bare_lower_case_address(session_factory: Factory) -> None:
    sent = ledger(session_factory, recipient="to@example.org")
    deliver(
        session_factory,
        resend_payload("delivered", sent.resend_email_id, recipient="Recipient <To@Example.ORG>"),
    )
    with session_factory() as session:
        assert session.scalars(select(EmailMetric.recipient)).one() == "to@example.org"


def test_process_event_metric_recipient_falls_back_to_the_ledgers_address_lower_cased(
    session_factory: Factory,
) -> None:
    sent = ledger(session_factory, recipient="Someone@Example.COM")
    payload = resend_payload("delivered", sent.resend_email_id)
    del payload["data"]["to"]
    deliver(session_factory, payload)
    with session_factory() as session:
        assert session.scalars(select(EmailMetric.recipient)).one() == "someone@example.com"
