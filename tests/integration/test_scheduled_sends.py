"""Scheduled sends, cancellation and attachments on the one send path, on the real PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from shared.models import EmailAttachment, EmailMessage, EmailRequest, MessageStatus
from shared.sending import pipeline
from shared.sending.context import SendContext
from tests.fake_resend import FakeResend
from tests.send_helpers import (
    FakeClock,
    add_connector,
    add_suppressions,
    add_task,
    email,
    rows,
    send_payload,
    sends,
    stored_requests,
)
from worker.beat import maintenance

pytestmark = pytest.mark.integration


def _later(clock: FakeClock, seconds: float) -> str:
    return (clock.now + timedelta(seconds=seconds)).isoformat()


def _release_and_dispatch(ctx: SendContext, factory: sessionmaker[Session], key_hash: str) -> None:
    """Beat's release (of every due row in the module's database), then this test's key's dispatch."""
    while maintenance.release_scheduled(factory, ctx, now=ctx.clock()):
        pass
    pipeline.dispatch(ctx, key_hash)


def _pdf(size: int = 2048) -> bytes:
    return os.urandom(size)


def _attachment(data: bytes, name: str = "invoice.pdf") -> dict[str, str]:
    return {"filename": name, "content": base64.b64encode(data).decode(), "content_type": "application/pdf"}


def _sent_attachments(request: httpx.Request) -> list[bytes]:
    body = json.loads(request.content)
    return [base64.b64decode(item["content"]) for item in body.get("attachments", [])]


# --- scheduled_at -----------------------------------------------------------------------------------


def test_a_scheduled_email_waits_in_the_ledger_without_a_request(
    ctx: SendContext,
    resend: FakeResend,
    factory: sessionmaker[Session],
    connector_id: uuid.UUID,
    clock: FakeClock,
) -> None:
    outcome = pipeline.send_email(
        ctx, send_payload(connector_id, "ada@example.test", scheduled_at=_later(clock, 60)), task_ref="t1"
    )

    assert [result.status for result in outcome.results] == ["scheduled"]
    assert outcome.results[0].next_attempt_at is not None
    assert sends(resend) == []
    [row] = rows(factory, connector_id)
    assert row.status == MessageStatus.SCHEDULED
    assert "scheduled_at" not in stored_requests(factory, connector_id)[0]


def test_a_scheduled_email_is_not_released_before_its_time(
    ctx: SendContext,
    resend: FakeResend,
    factory: sessionmaker[Session],
    connector_id: uuid.UUID,
    clock: FakeClock,
    key_hash: str,
) -> None:
    pipeline.send_email(
        ctx, send_payload(connector_id, "ada@example.test", scheduled_at=_later(clock, 60)), task_ref="t"
    )
    clock.advance(59)

    _release_and_dispatch(ctx, factory, key_hash)

    assert sends(resend) == []
    assert [row.status for row in rows(factory, connector_id)] == [MessageStatus.SCHEDULED]


def test_a_scheduled_email_leaves_through_the_normal_dispatch_once_its_time_has_come(
    ctx: SendContext,
    resend: FakeResend,
    factory: sessionmaker[Session],
    connector_id: uuid.UUID,
    clock: FakeClock,
    key_hash: str,
) -> None:
    pipeline.send_email(
        ctx, send_payload(connector_id, "ada@example.test", scheduled_at=_later(clock, 60)), task_ref="t"
    )
    clock.advance(60)

    _release_and_dispatch(ctx, factory, key_hash)

    [request] = sends(resend)
    assert "scheduled_at" not in json.loads(request.content)
    [row] = rows(factory, connector_id)
    assert row.status == MessageStatus.SENT
    assert row.scheduled_at is not None


def test_a_recipient_suppressed_before_the_time_is_not_mailed(
    ctx: SendContext,
    resend: FakeResend,
    factory: sessionmaker[Session],
    ids: tuple[uuid.UUID, uuid.UUID],
    clock: FakeClock,
    key_hash: str,
) -> None:
    organization_id, connector_id = ids
    pipeline.send_email(
        ctx, send_payload(connector_id, "ada@example.test", scheduled_at=_later(clock, 60)), task_ref="t"
    )
    add_suppressions(factory, organization_id, ["ada@example.test"], reason="unsubscribed")
    clock.advance(61)

    _release_and_dispatch(ctx, factory, key_hash)

    assert sends(resend) == []
    assert [row.status for row in rows(factory, connector_id)] == [MessageStatus.SUPPRESSED]


def test_scheduled_at_without_an_offset_is_refused_naming_the_field(
    ctx: SendContext, factory: sessionmaker[Session], connector_id: uuid.UUID
) -> None:
    outcome = pipeline.send_email(
        ctx, send_payload(connector_id, "ada@example.test", scheduled_at="2026-12-08T09:00:00"), task_ref="t"
    )

    [result] = outcome.results
    assert result.status == "failed"
    assert "scheduled_at" in (result.reason or "")


def test_natural_language_scheduled_at_is_refused_naming_the_field(
    ctx: SendContext, connector_id: uuid.UUID
) -> None:
    outcome = pipeline.send_email(
        ctx, send_payload(connector_id, "ada@example.test", scheduled_at="in 1 min"), task_ref="t"
    )

    [result] = outcome.results
    assert result.status == "failed"
    assert "scheduled_at" in (result.reason or "")


def test_scheduled_rows_of_one_instant_leave_oldest_first_at_the_rate_the_budget_allows(
    ctx: SendContext, resend: FakeResend, factory: sessionmaker[Session], clock: FakeClock, key_hash: str
) -> None:
    _, connector_id = add_connector(factory, per_hour=2000, per_day=100_000)
    at = _later(clock, 30)
    for batch in range(5):
        recipients = [f"r{batch}-{n:04d}@example.test" for n in range(1000)]
        kwargs = {
            "connector_id": str(connector_id),
            "emails": [email(to, scheduled_at=at) for to in recipients],
        }
        pipeline.send_batch(ctx, kwargs, task_ref=f"campaign-{batch}")
    assert sends(resend) == []
    clock.advance(30)

    while maintenance.release_scheduled(factory, ctx, now=clock()):
        pass
    while pipeline.dispatch(ctx, key_hash):
        pass

    sent = [to for request in sends(resend) for item in json.loads(request.content) for to in item["to"]]
    # The hour budget (2000, refilling a little as the limiter's clock runs) decides how many leave;
    # the oldest campaigns go first.
    assert 2000 <= len(sent) < 3000
    assert {to.split("-")[0] for to in sent[:2000]} == {"r0", "r1"}
    with factory() as session:
        waiting = session.scalar(
            select(func.count()).where(
                EmailMessage.connector_id == connector_id, EmailMessage.status == MessageStatus.DEFERRED
            )
        )
    assert waiting == 5000 - len(sent)


# --- cancellation -----------------------------------------------------------------------------------


def test_a_send_cancelled_before_its_time_makes_no_request_and_is_cancelled(
    ctx: SendContext,
    resend: FakeResend,
    factory: sessionmaker[Session],
    connector_id: uuid.UUID,
    clock: FakeClock,
    key_hash: str,
) -> None:
    payload = send_payload(
        connector_id, ["ada@example.test", "bob@example.test"], scheduled_at=_later(clock, 60)
    )
    pipeline.send_email(ctx, {**payload, "idempotency_key": "campaign/7"}, task_ref="t")

    outcome = pipeline.cancel(
        ctx, {"connector_id": str(connector_id), "idempotency_key": "campaign/7"}, actor="test"
    )
    clock.advance(61)
    _release_and_dispatch(ctx, factory, key_hash)

    assert outcome.counts() == {"cancelled": 2}
    assert sends(resend) == []
    assert {row.status for row in rows(factory, connector_id)} == {MessageStatus.CANCELLED}


def test_a_callers_key_that_looks_like_the_workers_own_is_cancelled_too(
    ctx: SendContext, factory: sessionmaker[Session], connector_id: uuid.UUID, clock: FakeClock
) -> None:
    payload = send_payload(connector_id, "ada@example.test", scheduled_at=_later(clock, 60))
    pipeline.send_email(ctx, {**payload, "idempotency_key": "pilot/campaign-7"}, task_ref="t")

    outcome = pipeline.cancel(
        ctx, {"connector_id": str(connector_id), "idempotency_key": "pilot/campaign-7"}, actor="test"
    )

    assert outcome.counts() == {"cancelled": 1}


def test_a_send_cancelled_after_it_left_is_answered_already_sent(
    ctx: SendContext, factory: sessionmaker[Session], connector_id: uuid.UUID
) -> None:
    outcome = pipeline.send_email(ctx, send_payload(connector_id, "ada@example.test"), task_ref="t")
    message_id = outcome.results[0].message_id

    answer = pipeline.cancel(ctx, {"message_ids": [message_id]}, actor="test")

    assert [item.answer for item in answer.answers] == ["already_sent"]
    assert [row.status for row in rows(factory, connector_id)] == [MessageStatus.SENT]


def test_a_task_s_waiting_rows_are_cancelled_by_its_id(
    ctx: SendContext, factory: sessionmaker[Session], ids: tuple[uuid.UUID, uuid.UUID], clock: FakeClock
) -> None:
    organization_id, connector_id = ids
    task_id = add_task(factory, organization_id)
    kwargs = {
        "connector_id": str(connector_id),
        "task_id": str(task_id),
        "emails": [email(f"p{n}@example.test", scheduled_at=_later(clock, 600)) for n in range(3)],
    }
    pipeline.send_batch(ctx, kwargs, task_ref="t")

    outcome = pipeline.cancel(ctx, {"task_id": str(task_id)}, actor="test")

    assert outcome.counts() == {"cancelled": 3}


def test_a_cancel_naming_rows_two_ways_is_refused() -> None:
    from shared.errors import PayloadInvalid
    from shared.sending.cancellation import selection_of
    from shared.sending.payloads import parse_cancel

    with pytest.raises(PayloadInvalid, match="exactly one"):
        selection_of(parse_cancel({"task_id": str(uuid.uuid4()), "message_ids": [str(uuid.uuid4())]}))


# --- attachments ------------------------------------------------------------------------------------


def test_attachments_reach_resend_byte_identical(
    ctx: SendContext, resend: FakeResend, connector_id: uuid.UUID
) -> None:
    data = _pdf()
    pipeline.send_email(
        ctx, send_payload(connector_id, "ada@example.test", attachments=[_attachment(data)]), task_ref="t"
    )

    [request] = sends(resend)
    assert [hashlib.sha256(sent).hexdigest() for sent in _sent_attachments(request)] == [
        hashlib.sha256(data).hexdigest()
    ]


def test_a_retry_resends_the_attachment_bytes_identically(
    ctx: SendContext, resend: FakeResend, connector_id: uuid.UUID, clock: FakeClock, key_hash: str
) -> None:
    resend.fail(httpx.ReadTimeout("timed out"))
    pipeline.send_email(
        ctx, send_payload(connector_id, "ada@example.test", attachments=[_attachment(_pdf())]), task_ref="t"
    )
    clock.advance(120)

    pipeline.dispatch(ctx, key_hash)

    first, again = sends(resend)
    assert first.content == again.content
    assert first.headers["Idempotency-Key"] == again.headers["Idempotency-Key"]


def test_emails_with_attachments_go_as_single_requests(
    ctx: SendContext, resend: FakeResend, connector_id: uuid.UUID
) -> None:
    attachment = _attachment(_pdf())
    kwargs = {
        "connector_id": str(connector_id),
        "emails": [email(f"a{n}@example.test", attachments=[attachment]) for n in range(3)],
    }

    pipeline.send_batch(ctx, kwargs, task_ref="t")

    assert [request.url.path for request in sends(resend)] == ["/emails"] * 3


def test_one_attachment_shared_by_1000_recipients_is_stored_once(
    ctx: SendContext, factory: sessionmaker[Session], connector_id: uuid.UUID, clock: FakeClock
) -> None:
    data = _pdf(256 * 1024)
    attachment = _attachment(data)
    kwargs = {
        "connector_id": str(connector_id),
        "emails": [
            email(f"s{n:04d}@example.test", attachments=[attachment], scheduled_at=_later(clock, 600))
            for n in range(1000)
        ],
    }

    pipeline.send_batch(ctx, kwargs, task_ref="t")

    digest = hashlib.sha256(data).hexdigest()
    with factory() as session:
        stored = session.scalars(select(EmailAttachment).where(EmailAttachment.sha256 == digest)).all()
        request_bytes = session.scalar(
            select(func.max(func.pg_column_size(EmailRequest.request)))
            .join(EmailMessage, EmailRequest.of_message())
            .where(EmailMessage.connector_id == connector_id)
        )
    assert [row.size for row in stored] == [len(data)]
    assert request_bytes is not None and request_bytes < 1024  # no row holds a copy


def test_an_oversized_email_is_refused_with_its_size(ctx: SendContext, connector_id: uuid.UUID) -> None:
    huge = "A" * (40 * 1024 * 1024 + 4)

    outcome = pipeline.send_email(
        ctx,
        send_payload(connector_id, "ada@example.test", attachments=[{"filename": "x.bin", "content": huge}]),
        task_ref="t",
    )

    [result] = outcome.results
    assert result.status == "failed"
    assert str(len(huge)) in (result.reason or "")
    assert "attachments" in (result.reason or "")


def test_retention_keeps_bytes_a_waiting_row_needs_and_removes_the_rest(
    ctx: SendContext, factory: sessionmaker[Session], connector_id: uuid.UUID, clock: FakeClock
) -> None:
    waiting, sent = _pdf(), _pdf()
    pipeline.send_email(
        ctx,
        send_payload(
            connector_id,
            "w@example.test",
            attachments=[_attachment(waiting)],
            scheduled_at=_later(clock, 600),
        ),
        task_ref="t",
    )
    pipeline.send_email(
        ctx, send_payload(connector_id, "s@example.test", attachments=[_attachment(sent)]), task_ref="t"
    )
    with factory.begin() as session:
        session.execute(text("UPDATE email_attachments SET last_used_at = now() - interval '2 hours'"))

    maintenance.remove_unneeded_attachments(factory, now=clock())

    with factory() as session:
        kept = set(session.scalars(select(EmailAttachment.sha256)))
    assert hashlib.sha256(waiting).hexdigest() in kept
    assert hashlib.sha256(sent).hexdigest() not in kept
