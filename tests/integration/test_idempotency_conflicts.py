"""A caller's idempotency key reused for other content is a recorded conflict, as Resend's 409 would be.

The same key with the same content is the same email: sent once, answered with its result.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from shared.models import AuditLog
from shared.sending import pipeline as sending
from tests.send_helpers import email, rows, send_payload, sends

pytestmark = pytest.mark.integration

RECIPIENTS = {
    "one recipient": ["ann@example.test"],
    "two recipients": ["ann@example.test", "bob@example.test"],
}


@pytest.fixture
def key() -> str:
    """A caller's idempotency key no other test of the module's database uses."""
    return f"order/{uuid.uuid4().hex[:8]}"


def conflicts(factory, connector_id) -> list[AuditLog]:
    with factory() as session:
        query = select(AuditLog).where(
            AuditLog.connector_id == connector_id, AuditLog.action == "send.idempotency_conflict"
        )
        return list(session.scalars(query))


@pytest.mark.parametrize("to", RECIPIENTS.values(), ids=RECIPIENTS.keys())
def test_a_key_reused_with_other_content_is_a_recorded_conflict(
    ctx, resend, factory, connector_id, key, to
) -> None:
    first = sending.send_email(ctx, send_payload(connector_id, to, idempotency_key=key), task_ref="t1")

    second = sending.send_email(
        ctx, send_payload(connector_id, to, subject="Changed", idempotency_key=key), task_ref="t2"
    )

    assert len(sends(resend)) == 1
    assert second.counts() == {"failed": len(to)}
    assert all("idempotency_key: already used" in (r.reason or "") for r in second.results)
    assert all(r.resend_id is None for r in second.results)
    assert [row.subject for row in rows(factory, connector_id)] == ["Hello"] * len(to)
    assert first.counts() == {"sent": len(to)}
    assert len(conflicts(factory, connector_id)) == len(to)


@pytest.mark.parametrize("to", RECIPIENTS.values(), ids=RECIPIENTS.keys())
def test_a_key_reused_with_the_same_content_answers_the_first_result(
    ctx, resend, factory, connector_id, key, to
) -> None:
    first = sending.send_email(ctx, send_payload(connector_id, to, idempotency_key=key), task_ref="t1")

    second = sending.send_email(ctx, send_payload(connector_id, to, idempotency_key=key), task_ref="t2")

    assert len(sends(resend)) == 1
    assert sorted((r.recipient, r.resend_id) for r in second.results) == sorted(
        (r.recipient, r.resend_id) for r in first.results
    )
    assert conflicts(factory, connector_id) == []


def test_a_key_used_twice_in_one_batch_with_other_content_sends_the_first_only(
    ctx, resend, factory, connector_id, key
) -> None:
    payload = {
        "connector_id": str(connector_id),
        "emails": [
            email("ann@example.test", idempotency_key=key),
            email("ann@example.test", subject="Other", idempotency_key=key),
        ],
    }

    outcome = sending.send_batch(ctx, payload, task_ref="b1")

    [row] = rows(factory, connector_id)
    assert (row.status, row.subject) == ("sent", "Hello")
    assert outcome.counts() == {"failed": 1, "sent": 1}
    assert len(conflicts(factory, connector_id)) == 1


def test_a_redelivered_task_with_a_key_is_no_conflict(ctx, resend, factory, connector_id, key) -> None:
    payload = send_payload(connector_id, "ann@example.test", idempotency_key=key)

    sending.send_email(ctx, payload, task_ref="t1")
    again = sending.send_email(ctx, payload, task_ref="t1")

    assert again.counts() == {"sent": 1} and len(sends(resend)) == 1
    assert conflicts(factory, connector_id) == []
