"""The send pipeline (record, then dispatch the API key's queue) on the real PostgreSQL, with fakeredis
buckets and a fake Resend (MockTransport). Each test's connectors use an API key of their own."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import fakeredis._socket._base
import httpx
import pytest
import redis
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from shared import connector_store as store
from shared import resend_client
from shared.models import AuditLog, Connector, ConnectorUsage, EmailMessage, EmailRequest, Task
from shared.rate_limit import ConnectorLimits, RateLimiter, api_key_hash
from shared.sending import pipeline, queue
from shared.sending.dispatch import ORPHANED_AFTER_S
from shared.sending.payloads import SendEmailPayload, parse_send_email
from shared.sending.retry_policy import MAX_ATTEMPTS
from tests.fake_resend import error_body
from tests.send_helpers import (
    add_connector,
    add_suppressions,
    add_task,
    batch_payload,
    rows,
    send_payload,
    sends,
    stored_requests,
)

pytestmark = pytest.mark.integration


def bodies(call: httpx.Request) -> list[dict[str, Any]]:
    body = json.loads(call.content)
    return body if isinstance(body, list) else [body]


def redispatch(ctx, clock, key_hash, *, after: float) -> dict:
    """Move the clock on ``after`` seconds and run the key's dispatch, as its scheduled run would."""
    clock.advance(after)
    return pipeline.dispatch(ctx, key_hash)


# --- send_email ---------------------------------------------------------------------------------


def test_send_email_sends_and_records_the_resend_id(ctx, resend, factory, connector_id) -> None:
    outcome = pipeline.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    [row] = rows(factory, connector_id)
    assert outcome.as_dict()["counts"] == {"sent": 1}
    assert (row.status, row.resend_email_id, row.attempts) == ("sent", "email-0001", 1)
    assert outcome.results[0].resend_id == "email-0001"


def test_send_email_sends_the_stored_request_with_the_row_key(ctx, resend, factory, connector_id) -> None:
    pipeline.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    [row] = rows(factory, connector_id)
    assert resend.last.url.path == "/emails"
    assert resend.last.headers["Idempotency-Key"] == row.idempotency_key
    body = resend.last_json()
    assert [body] == stored_requests(factory, connector_id)
    assert body["headers"] == {"X-Task-ID": "t1"}
    assert {"name": "message_id", "value": str(row.id)} in body["tags"]


def test_send_email_fans_a_to_list_out_to_one_email_per_recipient(ctx, resend, factory, connector_id) -> None:
    to = ["a@example.test", "b@example.test", "c@example.test"]
    outcome = pipeline.send_email(ctx, send_payload(connector_id, to), task_ref="t1")

    [call] = sends(resend)  # one request for the whole list: the request rate is the scarce budget
    assert call.url.path == "/emails/batch"
    assert sorted(item["to"] for item in bodies(call)) == [[a] for a in to]
    assert [r.status for r in rows(factory, connector_id)] == ["sent"] * 3
    assert len({r.idempotency_key for r in rows(factory, connector_id)}) == 3
    assert outcome.counts() == {"sent": 3}


def test_send_email_delivered_twice_sends_once(ctx, resend, factory, connector_id) -> None:
    payload = send_payload(connector_id, "ann@example.test")
    first = pipeline.send_email(ctx, payload, task_ref="same-task-id")
    second = pipeline.send_email(ctx, payload, task_ref="same-task-id")

    assert len(sends(resend)) == 1
    assert second.results == first.results


def test_send_email_redelivered_after_sending_answers_from_the_row(
    ctx, resend, factory, connector_id
) -> None:
    payload = send_payload(connector_id, "ann@example.test")
    pipeline.send_email(ctx, payload, task_ref="t1")

    again = pipeline.send_email(ctx, payload, task_ref="t1")

    assert again.counts() == {"sent": 1} and again.results[0].resend_id == "email-0001"
    assert len(sends(resend)) == 1


# --- pending sends of one API key leave together ---------------------------------------------------


@pytest.fixture
def paced(ctx, clock, fake_redis, redis_prefix, monkeypatch: pytest.MonkeyPatch) -> RateLimiter:
    """The context's limiter on the test's clock: the key's request token comes back only as time moves.

    fakeredis expires keys on the same clock: on the wall clock, a bucket's key (kept until the bucket
    is full again, half a second for the request bucket) would vanish, refilled, whenever a loaded
    machine took that long between two steps of a test.
    """
    monkeypatch.setattr(fakeredis._socket._base, "time", SimpleNamespace(time=lambda: clock.now.timestamp()))
    ctx.limiter = RateLimiter(
        fake_redis, key_prefix=redis_prefix, clock_ms=lambda: int(clock.now.timestamp() * 1000)
    )
    return ctx.limiter


def test_rows_waiting_for_the_request_token_leave_together_in_one_batch(
    ctx, resend, factory, connector_id, paced, clock, key_hash, scheduler
) -> None:
    # Given the key's request token was just taken (by another dispatcher)
    assert paced.acquire_request_for(key_hash).granted

    # When five single-recipient tasks arrive
    outcomes = [
        pipeline.send_email(ctx, send_payload(connector_id, f"r{n}@example.test"), task_ref=f"t{n}")
        for n in range(5)
    ]

    # Then nothing went yet; each asked for the key's next dispatch (the scheduler keeps one)
    assert sends(resend) == []
    assert {result.status for outcome in outcomes for result in outcome.results} == {"pending"}
    assert {key for key, _ in scheduler.calls} == {key_hash}
    # When the dispatch runs with the next token, all five leave in one batch request
    redispatch(ctx, clock, key_hash, after=1.0)
    [call] = sends(resend)
    assert call.url.path == "/emails/batch" and len(bodies(call)) == 5
    assert [r.status for r in rows(factory, connector_id)] == ["sent"] * 5


def test_rows_of_two_connectors_on_one_key_leave_in_one_request(
    ctx, resend, factory, paced, clock, key_hash
) -> None:
    (_, first), (_, second) = add_connector(factory), add_connector(factory)
    assert paced.acquire_request_for(key_hash).granted
    pipeline.send_email(ctx, send_payload(first, "a@example.test"), task_ref="t1")
    pipeline.send_email(ctx, send_payload(second, "b@example.test"), task_ref="t2")

    redispatch(ctx, clock, key_hash, after=1.0)

    [call] = sends(resend)
    assert sorted(item["to"][0] for item in bodies(call)) == ["a@example.test", "b@example.test"]
    assert rows(factory, first)[0].status == rows(factory, second)[0].status == "sent"
    with factory() as session:
        usage = session.execute(
            select(ConnectorUsage.connector_id, ConnectorUsage.emails_sent, ConnectorUsage.requests).where(
                ConnectorUsage.connector_id.in_([first, second])
            )
        ).all()
    assert sorted((emails, requests) for _, emails, requests in usage) == [(1, 1), (1, 1)]


def test_a_dispatch_sends_the_oldest_ready_rows_first_up_to_a_hundred(
    ctx, resend, factory, connector_id, paced, clock, key_hash
) -> None:
    assert paced.acquire_request_for(key_hash).granted
    recipients = [f"r{n:03d}@example.test" for n in range(150)]
    pipeline.send_batch(ctx, batch_payload(connector_id, recipients[:100]), task_ref="old")
    pipeline.send_batch(ctx, batch_payload(connector_id, recipients[100:]), task_ref="new")

    redispatch(ctx, clock, key_hash, after=1.0)  # one token: the oldest hundred
    [first] = sends(resend)
    redispatch(ctx, clock, key_hash, after=1.0)

    second = sends(resend)[1]
    assert sorted(item["to"][0] for item in bodies(first)) == recipients[:100]
    assert sorted(item["to"][0] for item in bodies(second)) == recipients[100:]


def test_a_task_whose_rows_another_dispatch_sent_makes_no_request(
    ctx, resend, factory, connector_id, paced, clock, key_hash
) -> None:
    assert paced.acquire_request_for(key_hash).granted
    payload = send_payload(connector_id, "ann@example.test")
    pipeline.send_email(ctx, payload, task_ref="t1")
    redispatch(ctx, clock, key_hash, after=1.0)  # the scheduled dispatch sends it

    clock.advance(1.0)
    again = pipeline.send_email(ctx, payload, task_ref="t1")  # the task, redelivered

    assert len(sends(resend)) == 1
    assert again.counts() == {"sent": 1}


def test_an_email_that_must_go_alone_is_sent_alone(ctx, resend, factory, connector_id, key_hash) -> None:
    pipeline.send_batch(ctx, batch_payload(connector_id, ["a@example.test", "b@example.test"]), task_ref="b1")
    resend.requests.clear()
    with factory.begin() as session:  # two queued rows (in their key's queue): one with an attachment
        for row in session.scalars(select(EmailMessage).where(EmailMessage.connector_id == connector_id)):
            row.status, row.attempt_key, row.attempts, row.dispatch_key = "queued", None, 0, key_hash
            if row.recipient == "a@example.test":
                body = session.scalars(select(EmailRequest).where(EmailRequest.message_id == row.id)).one()
                body.request = {**body.request, "attachments": [{"filename": "a.txt", "content": "YQ=="}]}

    pipeline.dispatch(ctx, key_hash)

    paths = [call.url.path for call in sends(resend)]
    assert sorted(paths) == ["/emails", "/emails"]
    assert [r.status for r in rows(factory, connector_id)] == ["sent", "sent"]


# --- outcomes unknown: the same unit again, under its key --------------------------------------------


def test_send_email_retry_after_a_server_error_is_byte_identical(
    ctx, resend, factory, connector_id, clock, key_hash, scheduler
) -> None:
    resend.reply(500, error_body(500, "internal_server_error", "boom"))
    payload = send_payload(connector_id, "ann@example.test")

    first = pipeline.send_email(ctx, payload, task_ref="t1")
    [(_, backoff)] = [call for call in scheduler.calls if call[1] > 0]
    redispatch(ctx, clock, key_hash, after=backoff)

    assert first.results[0].status == "pending"
    a, b = sends(resend)
    assert a.content == b.content
    assert a.headers["Idempotency-Key"] == b.headers["Idempotency-Key"]
    assert rows(factory, connector_id)[0].status == "sent"


def test_a_retry_of_an_unknown_outcome_takes_no_second_email_token(
    ctx, resend, factory, clock, key_hash, limiter
) -> None:
    _, connector_id = add_connector(factory, per_hour=1, per_day=10)
    resend.reply(500, error_body(500, "internal_server_error", "boom"))

    pipeline.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")
    redispatch(ctx, clock, key_hash, after=60)

    assert [r.status for r in rows(factory, connector_id)] == ["sent"] and len(sends(resend)) == 2
    assert limiter.get_usage_stats(connector_id, "hour", ConnectorLimits(1, 10)).used == 1


def test_a_batch_whose_outcome_is_unknown_is_sent_again_whole(
    ctx, resend, factory, connector_id, clock, key_hash
) -> None:
    resend.fail(httpx.ReadTimeout("slow"))
    recipients = ["a@example.test", "b@example.test", "c@example.test"]
    pipeline.send_batch(ctx, batch_payload(connector_id, recipients), task_ref="b1")
    pipeline.send_email(ctx, send_payload(connector_id, "later@example.test"), task_ref="t2")

    redispatch(ctx, clock, key_hash, after=60)

    first, later, again = sends(resend)
    assert again.content == first.content
    assert again.headers["Idempotency-Key"] == first.headers["Idempotency-Key"]
    assert [item["to"] for item in bodies(later)] == [["later@example.test"]]
    assert [r.status for r in rows(factory, connector_id)] == ["sent"] * 4


def test_a_unit_sent_again_carries_its_rows_answered_since(
    ctx, resend, factory, connector_id, clock, key_hash
) -> None:
    resend.fail(httpx.ReadTimeout("slow"))
    pipeline.send_batch(ctx, batch_payload(connector_id, ["a@example.test", "b@example.test"]), task_ref="b1")
    with factory.begin() as session:  # a webhook says one of them was delivered meanwhile
        row = session.scalars(
            select(EmailMessage).where(
                EmailMessage.recipient == "a@example.test", EmailMessage.connector_id == connector_id
            )
        ).one()
        row.status, row.resend_email_id = "delivered", "email-a"

    redispatch(ctx, clock, key_hash, after=60)

    first, again = sends(resend)
    assert again.content == first.content  # the same unit, not a smaller one under another key
    by_recipient = {r.recipient: r.status for r in rows(factory, connector_id)}
    assert by_recipient == {"a@example.test": "delivered", "b@example.test": "sent"}


def test_a_unit_whose_dispatcher_died_mid_request_is_sent_again_whole(
    ctx, resend, factory, connector_id, key_hash, scheduler
) -> None:
    pipeline.send_batch(ctx, batch_payload(connector_id, ["a@example.test", "b@example.test"]), task_ref="b1")
    with factory.begin() as session:  # as if the process had died after committing the attempt
        session.execute(
            update(EmailMessage)
            .where(EmailMessage.connector_id == connector_id)
            .values(status="sending", resend_email_id=None, next_attempt_at=None, dispatch_key=key_hash)
        )

    assert pipeline.dispatch(ctx, key_hash) == {}  # in flight only just now: looked at later
    assert scheduler.calls[-1] == (key_hash, ORPHANED_AFTER_S + 1)
    with factory.begin() as session:  # ... later: nobody holds the unit's lock
        session.execute(
            update(EmailMessage)
            .where(EmailMessage.connector_id == connector_id)
            .values(updated_at=datetime.now(UTC) - timedelta(seconds=ORPHANED_AFTER_S + 1))
        )
    pipeline.dispatch(ctx, key_hash)

    first, again = sends(resend)
    assert again.content == first.content
    assert again.headers["Idempotency-Key"] == first.headers["Idempotency-Key"]
    assert [r.status for r in rows(factory, connector_id)] == ["sent", "sent"]


def test_a_unit_in_flight_is_not_taken_by_another_dispatcher(
    ctx, resend, factory, connector_id, key_hash
) -> None:
    pipeline.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")
    [row] = rows(factory, connector_id)
    with factory.begin() as session:
        session.execute(
            update(EmailMessage)
            .where(EmailMessage.id == row.id)
            .values(
                status="sending", next_attempt_at=None, updated_at=datetime.now(UTC) - timedelta(minutes=5)
            )
        )
    with ctx.engine.connect() as live:  # its dispatcher, alive, still waiting for Resend's answer
        live.execute(text("SELECT pg_advisory_lock(hashtextextended(:unit, 7))"), {"unit": row.attempt_key})

        later = pipeline.send_email(ctx, send_payload(connector_id, "bob@example.test"), task_ref="t2")

        live.execute(text("SELECT pg_advisory_unlock_all()"))
    assert [call.headers["Idempotency-Key"] for call in sends(resend)][1:] == [
        rows(factory, connector_id)[1].idempotency_key
    ]
    assert later.counts() == {"sent": 1}  # the queue goes on meanwhile


def test_send_email_gives_up_after_max_attempts(ctx, resend, factory, connector_id, clock, key_hash) -> None:
    for _ in range(MAX_ATTEMPTS):
        resend.reply(503, error_body(503, "service_unavailable", "down"))

    pipeline.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")
    for _ in range(MAX_ATTEMPTS + 2):
        redispatch(ctx, clock, key_hash, after=60)

    [row] = rows(factory, connector_id)
    assert len(sends(resend)) == MAX_ATTEMPTS
    assert row.status == "failed" and row.last_error.startswith(f"gave up after {MAX_ATTEMPTS} attempts")


# --- a single email with nothing waiting goes alone -------------------------------------------------


def test_a_single_email_with_nothing_waiting_goes_alone_without_a_claim(
    ctx, resend, factory, connector_id, monkeypatch
) -> None:
    claims = calls_to(queue, "claim", monkeypatch)

    outcome = pipeline.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    [row] = rows(factory, connector_id)
    [call] = sends(resend)
    assert call.url.path == "/emails" and call.headers["Idempotency-Key"] == row.idempotency_key
    assert (row.status, row.attempts, row.attempt_key) == ("sent", 1, row.idempotency_key)
    assert outcome.counts() == {"sent": 1} and claims == []


def test_a_single_email_behind_waiting_rows_leaves_with_them_on_the_token_it_took(
    ctx, resend, factory, connector_id, paced, clock, key_hash
) -> None:
    assert paced.acquire_request_for(key_hash).granted
    for n in range(2):
        pipeline.send_email(ctx, send_payload(connector_id, f"r{n}@example.test"), task_ref=f"t{n}")
    clock.advance(1.0)  # the next token is free: the next email takes it

    outcome = pipeline.send_email(ctx, send_payload(connector_id, "last@example.test"), task_ref="t2")

    [call] = sends(resend)  # not alone: the older rows go first, in the same request
    assert call.url.path == "/emails/batch" and len(bodies(call)) == 3
    assert outcome.counts() == {"sent": 1}
    assert [r.status for r in rows(factory, connector_id)] == ["sent"] * 3


def test_a_single_email_sent_alone_counts_in_its_task(ctx, resend, factory, ids) -> None:
    organization_id, connector_id = ids
    task_id = add_task(factory, organization_id)

    pipeline.send_email(
        ctx, send_payload(connector_id, "ann@example.test", task_id=str(task_id)), task_ref="x"
    )

    with factory() as session:
        task = session.get_one(Task, task_id)
    assert task.execution_result["sends"] == {"sent": 1, "total": 1}


def test_a_single_email_naming_another_organizations_task_is_refused_without_a_request(
    ctx, resend, factory, connector_id
) -> None:
    foreign_task = add_task(factory, add_connector(factory)[0])

    outcome = pipeline.send_email(
        ctx, send_payload(connector_id, "ann@example.test", task_id=str(foreign_task)), task_ref="x"
    )

    [result] = outcome.results
    assert result.status == "failed" and "task_id: the task belongs to another organization" in result.reason
    assert sends(resend) == []
    assert [r.status for r in rows(factory, connector_id)] == ["failed"]  # recorded, never sent


def test_a_single_email_whose_key_names_an_earlier_email_is_answered_from_it_without_a_request(
    ctx, resend, factory, connector_id
) -> None:
    payload = send_payload(connector_id, "ann@example.test", idempotency_key="invoice/1")
    first = pipeline.send_email(ctx, payload, task_ref="t1")

    again = pipeline.send_email(ctx, payload, task_ref="t2")

    assert len(sends(resend)) == 1
    assert again.results == first.results


def test_a_single_email_over_a_spent_budget_is_parked_not_sent_alone(ctx, resend, factory) -> None:
    _, connector_id = add_connector(factory, per_hour=1)
    pipeline.send_email(ctx, send_payload(connector_id, "a@example.test"), task_ref="t1")

    outcome = pipeline.send_email(ctx, send_payload(connector_id, "b@example.test"), task_ref="t2")

    assert len(sends(resend)) == 1
    assert outcome.results[0].status == "deferred"
    assert advisory_locks(factory) == 0


# --- each row's own rules ------------------------------------------------------------------------


def test_send_email_answers_a_suppressed_recipient_without_a_call_or_token(
    ctx, resend, factory, ids, limiter
) -> None:
    organization_id, connector_id = ids
    add_suppressions(factory, organization_id, ["ann@example.test"])

    outcome = pipeline.send_email(ctx, send_payload(connector_id, "Ann <ANN@Example.test>"), task_ref="t1")

    [result] = outcome.results
    today = datetime.now(UTC).date().isoformat()
    assert (result.status, result.reason) == ("suppressed", f"suppressed: hard_bounce since {today}")
    assert sends(resend) == []
    assert limiter.get_usage_stats(connector_id, "hour", ConnectorLimits(1000, 10000)).used == 0


def test_a_unit_with_a_suppressed_address_and_a_spent_budget_sends_the_others(
    ctx, resend, factory, paced, clock, key_hash
) -> None:
    organization_id, open_connector = add_connector(factory)
    _, spent_connector = add_connector(factory, per_hour=1, per_day=10)
    add_suppressions(factory, organization_id, ["gone@example.test"])
    assert paced.acquire_request_for(key_hash).granted
    pipeline.send_batch(
        ctx, batch_payload(open_connector, ["ok@example.test", "gone@example.test"]), task_ref="b1"
    )
    pipeline.send_batch(
        ctx, batch_payload(spent_connector, ["s1@example.test", "s2@example.test"]), task_ref="b2"
    )

    redispatch(ctx, clock, key_hash, after=1.0)

    [call] = sends(resend)
    sent_to = sorted(item["to"][0] for item in bodies(call))
    assert len(sent_to) == 2 and sent_to[0] == "ok@example.test"
    assert {r.recipient: r.status for r in rows(factory, open_connector)} == {
        "ok@example.test": "sent",
        "gone@example.test": "suppressed",
    }
    assert sorted(r.status for r in rows(factory, spent_connector)) == ["deferred", "sent"]


def test_send_email_rate_limited_waits_retry_after_without_using_an_attempt(
    ctx, resend, factory, connector_id, api_key, key_hash, scheduler, paced, clock
) -> None:
    resend.reply(429, error_body(429, "rate_limit_exceeded", "slow down"), headers={"retry-after": "7"})

    outcome = pipeline.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    [row] = rows(factory, connector_id)
    assert outcome.counts() == {"deferred": 1}
    assert (row.status, row.attempts, row.attempt_key) == ("deferred", 0, None)
    assert (key_hash, 7.0) in scheduler.calls
    cooldown = paced.acquire_request_for(api_key_hash(api_key))
    assert (cooldown.granted, cooldown.blocked_by) == (False, "cooldown")


def test_send_email_long_retry_after_defers_the_row_and_schedules_nothing(
    ctx, resend, factory, connector_id, scheduler
) -> None:
    resend.reply(429, error_body(429, "rate_limit_exceeded", "slow down"), headers={"retry-after": "600"})

    pipeline.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    [row] = rows(factory, connector_id)
    assert (row.status, row.attempts) == ("deferred", 0)
    assert row.next_attempt_at is not None
    assert all(delay <= 60 for _, delay in scheduler.calls)  # beat releases it


def test_send_email_quota_exceeded_defers_without_failing(ctx, resend, factory, connector_id) -> None:
    resend.reply(429, error_body(429, "daily_quota_exceeded", "quota"), headers={"retry-after": "5000"})

    outcome = pipeline.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    assert outcome.counts() == {"deferred": 1}
    assert rows(factory, connector_id)[0].attempts == 0


@pytest.mark.parametrize(
    ("status", "name", "message"),
    [
        (422, "validation_error", "Invalid `to` field"),
        (409, "invalid_idempotent_request", "payload changed"),
        (403, "validation_error", "You can only send testing emails to your own address"),
    ],
)
def test_send_email_permanent_refusal_fails_with_resends_message(
    ctx, resend, factory, connector_id, status, name, message
) -> None:
    resend.reply(status, error_body(status, name, message))

    outcome = pipeline.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    [result] = outcome.results
    assert result.status == "failed" and message in (result.reason or "")


def test_send_email_rejected_key_fails_and_marks_the_connector_error(
    ctx, resend, factory, connector_id
) -> None:
    resend.reply(401, error_body(401, "invalid_api_key", "API key is invalid"))

    outcome = pipeline.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    assert outcome.counts() == {"failed": 1}
    with factory() as session:
        connector = session.get_one(Connector, connector_id)
        audits = session.scalars(select(AuditLog.action).where(AuditLog.connector_id == connector_id)).all()
    assert connector.status == "error" and "API key is invalid" in (connector.last_error or "")
    assert "connector.status_change" in audits


def test_send_email_to_a_paused_connector_defers_without_a_call(ctx, resend, factory) -> None:
    _, connector_id = add_connector(factory, status="paused")

    outcome = pipeline.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    assert outcome.counts() == {"deferred": 1}
    assert sends(resend) == []


def test_send_email_to_a_connector_paused_since_its_rows_were_queued_defers(
    ctx, resend, factory, connector_id, paced, clock, key_hash
) -> None:
    assert paced.acquire_request_for(key_hash).granted
    pipeline.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")
    with factory.begin() as session:
        store.pause(session, connector_id, actor="test")

    redispatch(ctx, clock, key_hash, after=1.0)

    assert [r.status for r in rows(factory, connector_id)] == ["deferred"]
    assert sends(resend) == []


def test_send_email_over_the_hour_budget_defers_without_using_attempts(ctx, resend, factory) -> None:
    _, connector_id = add_connector(factory, per_hour=2, per_day=10)

    for n in range(3):
        pipeline.send_email(ctx, send_payload(connector_id, f"r{n}@example.test"), task_ref=f"t{n}")

    assert [(r.status, r.attempts) for r in rows(factory, connector_id)] == [
        ("sent", 1),
        ("sent", 1),
        ("deferred", 0),
    ]


def calls_to(target: object, name: str, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The positional arguments of every call to ``target.name`` from now on (which still runs)."""
    calls: list[tuple[Any, ...]] = []
    original = getattr(target, name)

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, recording)
    return calls


def test_emails_over_a_spent_budget_take_no_request_tokens_after_the_first_refusal(
    ctx, resend, factory, monkeypatch
) -> None:
    _, connector_id = add_connector(factory, per_hour=2, per_day=10)
    taken = calls_to(ctx.limiter, "acquire_request_for", monkeypatch)

    for n in range(7):
        pipeline.send_email(ctx, send_payload(connector_id, f"r{n}@example.test"), task_ref=f"t{n}")

    assert len(sends(resend)) == 2
    assert len(taken) == 3  # two sends, and the one refused its email token
    assert [r.status for r in rows(factory, connector_id)].count("deferred") == 5


def test_a_suppressed_recipient_is_answered_at_once_while_the_budget_is_spent(ctx, resend, factory) -> None:
    organization_id, connector_id = add_connector(factory, per_hour=1, per_day=10)
    add_suppressions(factory, organization_id, ["gone@example.test", "left@example.test"])
    pipeline.send_email(ctx, send_payload(connector_id, "first@example.test"), task_ref="t1")
    pipeline.send_email(ctx, send_payload(connector_id, "second@example.test"), task_ref="t2")  # seen spent

    to = ["gone@example.test", "left@example.test", "third@example.test"]
    outcome = pipeline.send_email(ctx, send_payload(connector_id, to), task_ref="t3")

    assert outcome.counts() == {"deferred": 1, "suppressed": 2}


def test_emails_parked_for_a_spent_budget_come_back_one_refill_apart(ctx, resend, factory, clock) -> None:
    # 10/hour refills a token every 360 s. Each email over the budget parks behind the ones parked
    # before it, rather than all of them coming back for the same next token.
    _, connector_id = add_connector(factory, per_hour=10, per_day=100)
    started = clock.now

    for n in range(13):
        pipeline.send_email(ctx, send_payload(connector_id, f"r{n:02d}@example.test"), task_ref=f"t{n}")

    parked = sorted(
        (r.next_attempt_at - started).total_seconds()
        for r in rows(factory, connector_id)
        if r.status == "deferred" and r.next_attempt_at is not None
    )
    assert [round(seconds / 360) for seconds in parked] == [1, 2, 3]


def test_parked_rows_go_when_their_time_has_come(ctx, resend, factory, paced, clock, key_hash) -> None:
    _, connector_id = add_connector(factory, per_hour=1, per_day=10)
    pipeline.send_email(ctx, send_payload(connector_id, "r1@example.test"), task_ref="t1")
    clock.advance(1.0)
    pipeline.send_email(ctx, send_payload(connector_id, "r2@example.test"), task_ref="t2")
    [parked] = [r for r in rows(factory, connector_id) if r.status == "deferred"]

    clock.now = parked.next_attempt_at
    pipeline.dispatch(ctx, key_hash)

    assert [r.status for r in rows(factory, connector_id)] == ["sent", "sent"]


def test_send_email_with_redis_down_sends_nothing_and_waits(ctx, resend, factory, connector_id) -> None:
    ctx.limiter = RateLimiter(redis.Redis(port=1, socket_connect_timeout=0.2), key_prefix="down:")

    outcome = pipeline.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    assert outcome.counts() == {"pending": 1}
    assert sends(resend) == []
    assert [r.status for r in rows(factory, connector_id)] == ["queued"]


def test_send_email_learns_the_request_rate_from_ratelimit_limit(
    ctx, resend, connector_id, fake_redis, redis_prefix, key_hash
) -> None:
    resend.reply(200, {"id": "e1"}, headers={"ratelimit-limit": "10"})

    pipeline.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    rate = fake_redis.hgetall(f"{redis_prefix}requests:{key_hash}:rate")
    assert rate == {b"capacity": b"1", b"period_ms": b"125"}  # 10/s, one at a time, paced at 80 %


def test_a_row_whose_recipient_is_busy_waits_for_a_later_unit(ctx, resend, factory, ids, key_hash) -> None:
    organization_id, connector_id = ids
    with ctx.engine.connect() as other:  # a suppression (or another send) of the recipient in progress
        other.execute(
            text("SELECT pg_advisory_lock(hashtextextended(CAST(:org AS text) || '/' || :email, 0))"),
            {"org": str(organization_id), "email": "ann@example.test"},
        )

        outcome = pipeline.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

        other.execute(text("SELECT pg_advisory_unlock_all()"))
    assert outcome.results[0].status == "pending"
    assert sends(resend) == []
    pipeline.dispatch(ctx, key_hash)
    assert [r.status for r in rows(factory, connector_id)] == ["sent"]


def test_send_email_resumes_rows_the_outbox_wrote_by_message_ids(ctx, resend, factory, connector_id) -> None:
    payload = parse_send_email(send_payload(connector_id, "ann@example.test"))
    assert isinstance(payload, SendEmailPayload)
    with factory.begin() as session:  # rows the outbox wrote: in no queue yet
        _, ids = pipeline.prepare(session, payload, task_ref="o1")
    assert [r.dispatch_key for r in rows(factory, connector_id)] == [None]

    outcome = pipeline.send_email(
        ctx, {"connector_id": str(connector_id), "message_ids": [str(i) for i in ids]}, task_ref="resume-1"
    )

    assert outcome.counts() == {"sent": 1}


def test_send_email_updates_task_counts_and_connector_usage(ctx, resend, factory, ids) -> None:
    organization_id, connector_id = ids
    task_id = add_task(factory, organization_id)
    add_suppressions(factory, organization_id, ["b@example.test"])

    pipeline.send_email(
        ctx,
        send_payload(connector_id, ["a@example.test", "b@example.test"], task_id=str(task_id)),
        task_ref="x",
    )

    with factory() as session:
        task = session.get_one(Task, task_id)
        usage = session.scalars(
            select(ConnectorUsage.emails_sent).where(ConnectorUsage.connector_id == connector_id)
        ).all()
    assert task.execution_result["sends"] == {"sent": 1, "suppressed": 1, "total": 2}
    assert usage == [1]


def advisory_locks(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        query = text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return int(session.scalar(query) or 0)


def test_send_email_leaves_no_advisory_lock_behind(ctx, resend, factory, connector_id) -> None:
    pipeline.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")
    resend.reply(503, error_body(503, "service_unavailable", "down"))
    pipeline.send_email(ctx, send_payload(connector_id, "bob@example.test"), task_ref="t2")

    assert advisory_locks(factory) == 0


# --- invalid payloads -----------------------------------------------------------------------------


def test_invalid_payload_is_recorded_as_failed_rows_with_the_reason(
    ctx, resend, factory, connector_id
) -> None:
    payload = {**send_payload(connector_id, "ann@example.test"), "subjet": "typo"}

    outcome = pipeline.send_email(ctx, payload, task_ref="t1")

    [row] = rows(factory, connector_id)
    assert row.status == "failed" and "subjet: unknown field" in (row.last_error or "")
    assert outcome.counts() == {"failed": 1}
    assert sends(resend) == []


def test_invalid_payload_without_a_known_connector_is_audited(ctx, resend, factory) -> None:
    outcome = pipeline.send_email(ctx, send_payload(uuid.uuid4(), "ann@example.test"), task_ref="t9")

    with factory() as session:
        [entry] = session.scalars(select(AuditLog).where(AuditLog.target == "celery-task:t9")).all()
    assert entry.target == "celery-task:t9" and "connector_id: no connector" in (entry.reason or "")
    assert outcome.counts() == {"failed": 1}


def test_payload_without_a_sender_fails_when_the_connector_has_no_default(ctx, resend, factory) -> None:
    _, connector_id = add_connector(factory, default_from=None)

    outcome = pipeline.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    assert "from: required" in (outcome.results[0].reason or "")


# --- send_batch -----------------------------------------------------------------------------------


def test_send_batch_chunks_at_100_with_distinct_keys(ctx, resend, factory, connector_id) -> None:
    recipients = [f"r{n:03d}@example.test" for n in range(250)]

    outcome = pipeline.send_batch(ctx, batch_payload(connector_id, recipients), task_ref="b1")

    calls = sends(resend)
    assert [len(bodies(c)) for c in calls] == [100, 100, 50]
    assert {c.url.path for c in calls} == {"/emails/batch"}
    assert len({c.headers["Idempotency-Key"] for c in calls}) == 3
    assert outcome.counts() == {"sent": 250}


def test_send_batch_sends_the_stored_requests_without_validating_them_again(
    ctx, resend, factory, connector_id, monkeypatch
) -> None:
    validated = calls_to(resend_client, "parse_send_request", monkeypatch)
    recipients = [f"r{n:03d}@example.test" for n in range(3)]

    outcome = pipeline.send_batch(ctx, batch_payload(connector_id, recipients), task_ref="b1")

    assert outcome.counts() == {"sent": 3}
    assert validated == []
    stored = stored_requests(factory, connector_id)  # by recipient
    assert sorted(bodies(sends(resend)[0]), key=lambda body: body["to"]) == stored


def test_send_batch_maps_per_index_errors_to_their_recipients(ctx, resend, factory, connector_id) -> None:
    resend.reply(
        200,
        {"data": [{"id": "e0"}, {"id": "e2"}], "errors": [{"index": 1, "message": "Invalid `to` field"}]},
    )
    recipients = ["a@example.test", "b@example.test", "c@example.test"]

    outcome = pipeline.send_batch(ctx, batch_payload(connector_id, recipients), task_ref="b1")

    [call] = sends(resend)  # the batch body is in the unit's canonical order: indexes follow it
    first, second, third = (item["to"][0] for item in bodies(call))
    by_recipient = {r.recipient: (r.status, r.resend_id, r.reason) for r in outcome.results}
    assert by_recipient == {
        first: ("sent", "e0", None),
        second: ("failed", None, "refused by Resend: Invalid `to` field"),
        third: ("sent", "e2", None),
    }


def test_send_batch_leaves_suppressed_recipients_out_of_the_call(ctx, resend, factory, ids) -> None:
    organization_id, connector_id = ids
    recipients = [f"r{n:03d}@example.test" for n in range(100)]
    add_suppressions(factory, organization_id, [r.upper() for r in recipients[:37]])

    outcome = pipeline.send_batch(ctx, batch_payload(connector_id, recipients), task_ref="b1")

    [call] = sends(resend)
    assert len(bodies(call)) == 63
    assert outcome.counts() == {"sent": 63, "suppressed": 37}


def test_send_batch_sends_what_the_budget_allows_and_defers_the_rest(ctx, resend, factory) -> None:
    _, connector_id = add_connector(factory, per_hour=5, per_day=50)

    outcome = pipeline.send_batch(
        ctx, batch_payload(connector_id, [f"r{n}@example.test" for n in range(8)]), task_ref="b1"
    )

    assert outcome.counts() == {"deferred": 3, "sent": 5}


def test_send_batch_defers_the_rest_until_tokens_for_all_of_them(ctx, resend, factory, clock) -> None:
    # 250/hour refills one token every 14.4 s: the ten rows left need 144 s of refill, so they are
    # parked until then, not brought back one token at a time.
    _, connector_id = add_connector(factory, per_hour=250, per_day=2000)
    started = clock.now

    outcome = pipeline.send_batch(
        ctx, batch_payload(connector_id, [f"r{n}@example.test" for n in range(260)]), task_ref="b2"
    )

    assert outcome.counts() == {"deferred": 10, "sent": 250}
    deferred = [r for r in rows(factory, connector_id) if r.status == "deferred"]
    assert all(
        r.next_attempt_at is not None and (r.next_attempt_at - started).total_seconds() >= 143
        for r in deferred
    )
