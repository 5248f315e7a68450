"""A payload the worker cannot handle is a recorded failure naming the field: never a crash, never a loss."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from shared.models import AuditLog
from shared.sending import pipeline as sending
from tests.send_helpers import add_connector, batch_payload, email, rows, send_payload, sends
from worker import tasks

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"subject": "a\x00b"}, "subject: must not contain NUL characters"),
        ({"html": "<p>\x00</p>"}, "html: must not contain NUL characters"),
        ({"subject": "a\ud800b"}, "subject: must be valid Unicode (no lone surrogates)"),
        ({"text": "\udfff", "html": None}, "text: must be valid Unicode (no lone surrogates)"),
        ({"metadata": {"k\x00": "v"}}, "metadata: a field name must not contain NUL characters"),
    ],
)
def test_unstorable_text_is_a_failed_row_naming_the_field(
    ctx, resend, factory, connector_id, fields, named
) -> None:
    payload = {
        k: v for k, v in send_payload(connector_id, "ann@example.test", **fields).items() if v is not None
    }

    outcome = sending.send_email(ctx, payload, task_ref="t1")

    [row] = rows(factory, connector_id)
    assert row.status == "failed" and named in (row.last_error or "")
    assert outcome.counts() == {"failed": 1} and sends(resend) == []


@pytest.mark.parametrize("to", ["ann\x00@example.test", "ann\ud800@example.test"])
def test_unstorable_address_is_recorded_failed_in_a_storable_form(
    ctx, resend, factory, connector_id, to
) -> None:
    outcome = sending.send_email(ctx, send_payload(connector_id, [to]), task_ref="t1")

    [row] = rows(factory, connector_id)
    assert row.status == "failed" and "to.0: " in (row.last_error or "")
    assert row.recipient == "ann\ufffd@example.test"
    assert outcome.counts() == {"failed": 1}


@pytest.mark.parametrize("task", [tasks.send_email, tasks.send_batch])
def test_a_payload_given_as_positional_args_is_a_failed_row_naming_args(
    ctx, resend, factory, connector_id, monkeypatch, task
) -> None:
    monkeypatch.setattr(tasks, "context", lambda app: ctx)
    payload = send_payload(connector_id, "ann@example.test")
    if task is tasks.send_batch:
        payload = batch_payload(connector_id, ["ann@example.test"])

    result = task.apply(args=[payload]).get()

    [row] = rows(factory, connector_id)
    assert row.status == "failed" and (row.last_error or "").startswith("args: positional arguments")
    assert result["failed"] == 1 and sends(resend) == []


def test_every_recipient_of_an_oversized_to_is_recorded(ctx, resend, factory, connector_id) -> None:
    to = [f"r{n:05d}@example.test" for n in range(10_000)]

    outcome = sending.send_email(ctx, send_payload(connector_id, to), task_ref="t1")

    recorded = rows(factory, connector_id)
    assert len(recorded) == 10_000 and {row.status for row in recorded} == {"failed"}
    assert "to: Value should have at most 50 items" in (recorded[0].last_error or "")
    assert outcome.counts() == {"failed": 10_000}


def test_every_recipient_of_an_oversized_batch_is_recorded(ctx, resend, factory, connector_id) -> None:
    recipients = [f"r{n:05d}@example.test" for n in range(5_000)]

    outcome = sending.send_batch(ctx, batch_payload(connector_id, recipients), task_ref="b1")

    recorded = rows(factory, connector_id)
    assert len(recorded) == 5_000 and {row.status for row in recorded} == {"failed"}
    assert "emails: List should have at most 1000 items" in (recorded[0].last_error or "")
    assert outcome.counts() == {"failed": 5_000}


def test_an_invalid_payload_without_recipients_is_audited_with_the_count(ctx, resend, factory) -> None:
    outcome = sending.send_email(ctx, {"to": "ann@example.test", "subject": "Hi"}, task_ref="t-no-connector")

    with factory() as session:
        [entry] = session.scalars(
            select(AuditLog).where(AuditLog.target == "celery-task:t-no-connector")
        ).all()
    assert entry.details["recipients"] == 1 and "connector_id: Field required" in (entry.reason or "")
    assert outcome.counts() == {"failed": 1}


def test_one_invalid_email_of_a_batch_is_refused_alone(ctx, resend, factory, connector_id) -> None:
    invalid = {"to": "bad@example.test", "html": "<p>no subject</p>"}
    payload = {"connector_id": str(connector_id), "emails": [email("good@example.test"), invalid]}

    outcome = sending.send_batch(ctx, payload, task_ref="b1")

    by_recipient = {row.recipient: row for row in rows(factory, connector_id)}
    assert by_recipient["good@example.test"].status == "sent"
    assert by_recipient["bad@example.test"].status == "failed"
    assert "emails.1.subject: Field required" in (by_recipient["bad@example.test"].last_error or "")
    assert outcome.counts() == {"failed": 1, "sent": 1}


def test_a_batch_email_that_cannot_be_rendered_is_refused_alone(ctx, resend, factory) -> None:
    _, connector_id = add_connector(factory, default_from=None)
    payload = {
        "connector_id": str(connector_id),
        "emails": [
            email("good@example.test", **{"from": "Me <me@example.test>"}),
            email("nofrom@example.test"),
        ],
    }

    outcome = sending.send_batch(ctx, payload, task_ref="b1")

    by_recipient = {row.recipient: row for row in rows(factory, connector_id)}
    assert by_recipient["good@example.test"].status == "sent"
    assert "emails.1: from: required" in (by_recipient["nofrom@example.test"].last_error or "")
    assert outcome.counts() == {"failed": 1, "sent": 1}


def test_a_batch_email_naming_no_mailbox_is_answered_and_the_rest_sent(
    ctx, resend, factory, connector_id
) -> None:
    payload = {"connector_id": str(connector_id), "emails": [email("good@example.test"), "not an email"]}

    outcome = sending.send_batch(ctx, payload, task_ref="b1")

    assert [row.status for row in rows(factory, connector_id)] == ["sent"]
    assert outcome.counts() == {"failed": 1, "sent": 1}
    assert any("emails.1: must be an object" in (r.reason or "") for r in outcome.results)
