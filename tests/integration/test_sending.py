"""worker.sending on the real PostgreSQL, with fakeredis buckets and a fake Resend (MockTransport)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from shared import connector_store as store
from shared import resend_client
from shared.models import AuditLog, Connector, ConnectorUsage, EmailMessage, Task
from shared.rate_limit import ConnectorLimits, RateLimiter, api_key_hash
from tests.fake_resend import error_body
from tests.send_helpers import (
    API_KEY,
    SENDER,
    add_connector,
    add_suppressions,
    add_task,
    batch_payload,
    rows,
    send_payload,
    sends,
)
from worker import ledger, sending
from worker.payloads import SendEmailPayload, parse_send_email
from worker.rendering import render_email
from worker.retry_policy import MAX_ATTEMPTS

pytestmark = pytest.mark.integration

# --- send_email ---------------------------------------------------------------------------------


def test_send_email_sends_and_records_the_resend_id(ctx, resend, factory, connector_id) -> None:
    outcome = sending.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    [row] = rows(factory, connector_id)
    assert outcome.as_dict()["counts"] == {"sent": 1}
    assert (row.status, row.resend_email_id, row.attempts) == ("sent", "email-0001", 1)
    assert outcome.results[0].resend_id == "email-0001"


def test_send_email_sends_the_stored_request_with_the_row_key(ctx, resend, factory, connector_id) -> None:
    sending.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    [row] = rows(factory, connector_id)
    assert resend.last.headers["Idempotency-Key"] == row.idempotency_key
    body = resend.last_json()
    assert body == row.request
    assert body["headers"] == {"X-Task-ID": "t1"}
    assert {"name": "message_id", "value": str(row.id)} in body["tags"]


def test_send_email_fans_a_to_list_out_to_one_email_per_recipient(ctx, resend, factory, connector_id) -> None:
    to = ["a@example.test", "b@example.test", "c@example.test"]
    outcome = sending.send_email(ctx, send_payload(connector_id, to), task_ref="t1")

    [call] = sends(resend)  # one request for the whole list: the request rate is the scarce budget
    assert call.url.path == "/emails/batch"
    # in the unit's canonical order (by idempotency key), so a retry rebuilds the same body
    assert sorted(item["to"] for item in json.loads(call.content)) == [[a] for a in to]
    assert [r.status for r in rows(factory, connector_id)] == ["sent"] * 3
    assert len({r.idempotency_key for r in rows(factory, connector_id)}) == 3
    assert outcome.counts() == {"sent": 3}


def test_send_email_delivered_twice_sends_once(ctx, resend, factory, connector_id) -> None:
    payload = send_payload(connector_id, "ann@example.test")
    first = sending.send_email(ctx, payload, task_ref="same-task-id")
    second = sending.send_email(ctx, payload, task_ref="same-task-id")

    assert len(sends(resend)) == 1
    assert second.results == first.results


def test_send_email_retry_after_a_server_error_is_byte_identical(ctx, resend, factory, connector_id) -> None:
    resend.reply(500, error_body(500, "internal_server_error", "boom"))
    payload = send_payload(connector_id, "ann@example.test")

    first = sending.send_email(ctx, payload, task_ref="t1")
    sending.send_email(ctx, payload, task_ref="t1")

    assert first.retry_in is not None and first.results[0].status == "pending"
    a, b = sends(resend)
    assert a.content == b.content
    assert a.headers["Idempotency-Key"] == b.headers["Idempotency-Key"]
    assert rows(factory, connector_id)[0].status == "sent"


def test_send_email_retry_of_an_unknown_outcome_takes_no_second_email_token(
    ctx, resend, factory, limiter
) -> None:
    _, connector_id = add_connector(factory, per_hour=1, per_day=10)
    resend.reply(500, error_body(500, "internal_server_error", "boom"))
    payload = send_payload(connector_id, "ann@example.test")

    sending.send_email(ctx, payload, task_ref="t1")  # takes the hour's only token; outcome unknown
    retry = sending.send_email(ctx, payload, task_ref="t1")

    assert retry.counts() == {"sent": 1} and len(sends(resend)) == 2
    assert limiter.get_usage_stats(connector_id, "hour", ConnectorLimits(1, 10)).used == 1


def test_resume_resends_an_unknown_single_send_alone_under_its_own_key(
    ctx, resend, factory, connector_id
) -> None:
    resend.reply(500, error_body(500, "internal_server_error", "boom"))
    sending.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")  # outcome unknown
    sending.send_batch(
        ctx, batch_payload(connector_id, ["bob@example.test", "cy@example.test"]), task_ref="t2"
    )
    [ann, *_] = rows(factory, connector_id)
    with factory() as session:  # bob and cy back to queued: as if their task's message had been lost
        session.execute(
            text("UPDATE email_messages SET status = 'queued' WHERE recipient <> 'ann@example.test'")
        )
        session.commit()
    ids = [str(row.id) for row in rows(factory, connector_id)]

    sending.send_email(ctx, {"connector_id": str(connector_id), "message_ids": ids}, task_ref="sweep")

    ann_first, _, ann_again, pair = sends(resend)
    assert ann_again.url.path == "/emails" and ann_again.content == ann_first.content
    assert ann_again.headers["Idempotency-Key"] == ann_first.headers["Idempotency-Key"] == ann.idempotency_key
    assert pair.url.path == "/emails/batch" and len(json.loads(pair.content)) == 2


def test_resume_of_part_of_an_unknown_batch_resends_the_whole_batch(
    ctx, resend, factory, connector_id
) -> None:
    resend.reply(500, error_body(500, "internal_server_error", "boom"))
    recipients = ["a@example.test", "b@example.test", "c@example.test"]
    sending.send_batch(ctx, batch_payload(connector_id, recipients), task_ref="b1")  # outcome unknown
    first_row = rows(factory, connector_id)[0]

    resume = {"connector_id": str(connector_id), "message_ids": [str(first_row.id)]}
    outcome = sending.send_email(ctx, resume, task_ref="reconcile")

    first, again = sends(resend)
    assert again.content == first.content
    assert again.headers["Idempotency-Key"] == first.headers["Idempotency-Key"] == first_row.attempt_key
    assert outcome.counts() == {"sent": 1}
    assert [row.status for row in rows(factory, connector_id)] == ["sent"] * 3


def test_send_email_gives_up_after_max_attempts(ctx, resend, factory, connector_id) -> None:
    for _ in range(MAX_ATTEMPTS):
        resend.reply(503, error_body(503, "service_unavailable", "down"))
    payload = send_payload(connector_id, "ann@example.test")

    for _ in range(MAX_ATTEMPTS + 2):
        outcome = sending.send_email(ctx, payload, task_ref="t1")

    [row] = rows(factory, connector_id)
    assert len(sends(resend)) == MAX_ATTEMPTS
    assert row.status == "failed" and row.last_error.startswith(f"gave up after {MAX_ATTEMPTS} attempts")
    assert outcome.retry_in is None


def test_send_email_answers_a_suppressed_recipient_without_a_call_or_token(
    ctx, resend, factory, ids, limiter
) -> None:
    organization_id, connector_id = ids
    add_suppressions(factory, organization_id, ["ann@example.test"])

    outcome = sending.send_email(ctx, send_payload(connector_id, "Ann <ANN@Example.test>"), task_ref="t1")

    [result] = outcome.results
    today = datetime.now(UTC).date().isoformat()
    assert (result.status, result.reason) == ("suppressed", f"suppressed: hard_bounce since {today}")
    assert sends(resend) == []
    assert limiter.get_usage_stats(connector_id, "hour", ConnectorLimits(1000, 10000)).used == 0


def test_send_email_rate_limited_waits_retry_after_without_using_an_attempt(
    ctx, resend, factory, connector_id, limiter
) -> None:
    resend.reply(429, error_body(429, "rate_limit_exceeded", "slow down"), headers={"retry-after": "7"})

    outcome = sending.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    [row] = rows(factory, connector_id)
    assert outcome.retry_in is not None and outcome.retry_in >= 7
    assert (row.status, row.attempts) == ("queued", 0)
    cooldown = limiter.acquire_request(API_KEY)
    assert (cooldown.granted, cooldown.blocked_by) == (False, "cooldown")


def test_send_email_long_retry_after_defers_the_row(ctx, resend, factory, connector_id) -> None:
    resend.reply(429, error_body(429, "rate_limit_exceeded", "slow down"), headers={"retry-after": "600"})

    outcome = sending.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    [row] = rows(factory, connector_id)
    assert outcome.retry_in is None
    assert (row.status, row.attempts) == ("deferred", 0)
    assert row.next_attempt_at is not None


def test_send_email_quota_exceeded_defers_without_failing(ctx, resend, factory, connector_id) -> None:
    resend.reply(429, error_body(429, "daily_quota_exceeded", "quota"), headers={"retry-after": "5000"})

    outcome = sending.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

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

    outcome = sending.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    [result] = outcome.results
    assert result.status == "failed" and message in (result.reason or "")
    assert outcome.retry_in is None


def test_send_email_rejected_key_fails_and_marks_the_connector_error(
    ctx, resend, factory, connector_id
) -> None:
    resend.reply(401, error_body(401, "invalid_api_key", "API key is invalid"))

    outcome = sending.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    assert outcome.counts() == {"failed": 1}
    with factory() as session:
        connector = session.get_one(Connector, connector_id)
        audits = session.scalars(select(AuditLog.action).where(AuditLog.connector_id == connector_id)).all()
    assert connector.status == "error" and "API key is invalid" in (connector.last_error or "")
    assert "connector.status_change" in audits


def test_send_email_to_a_paused_connector_defers_without_a_call(ctx, resend, factory) -> None:
    _, connector_id = add_connector(factory, status="paused")

    outcome = sending.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    assert outcome.counts() == {"deferred": 1}
    assert sends(resend) == []


def test_send_email_over_the_hour_budget_defers_without_using_attempts(ctx, resend, factory) -> None:
    _, connector_id = add_connector(factory, per_hour=2, per_day=10)

    for n in range(3):
        sending.send_email(ctx, send_payload(connector_id, f"r{n}@example.test"), task_ref=f"t{n}")

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
    taken = calls_to(ctx.limiter, "acquire_request", monkeypatch)

    for n in range(7):
        sending.send_email(ctx, send_payload(connector_id, f"r{n}@example.test"), task_ref=f"t{n}")

    assert len(sends(resend)) == 2
    assert len(taken) == 3  # two sends, and the one refused its email token
    assert [r.status for r in rows(factory, connector_id)].count("deferred") == 5


def test_batches_over_a_spent_budget_take_no_request_tokens_after_the_first_refusal(
    ctx, resend, factory, monkeypatch
) -> None:
    _, connector_id = add_connector(factory, per_hour=5, per_day=50)
    taken = calls_to(ctx.limiter, "acquire_request", monkeypatch)

    for b in range(3):
        to = [f"b{b}-{n}@example.test" for n in range(8)]
        sending.send_batch(ctx, batch_payload(connector_id, to), task_ref=f"b{b}")

    assert len(sends(resend)) == 1
    assert len(taken) == 1  # the first batch: 5 sent, 3 parked; the next two parked without one
    assert [r.status for r in rows(factory, connector_id)].count("deferred") == 19


def test_emails_parked_for_a_spent_budget_come_back_one_refill_apart(ctx, resend, factory) -> None:
    # 10/hour refills a token every 360 s. Each email over the budget parks behind the ones parked
    # before it, rather than all of them coming back for the same next token.
    _, connector_id = add_connector(factory, per_hour=10, per_day=100)
    started = ctx.clock()

    for n in range(13):
        sending.send_email(ctx, send_payload(connector_id, f"r{n:02d}@example.test"), task_ref=f"t{n}")

    parked = sorted(
        (r.next_attempt_at - started).total_seconds()
        for r in rows(factory, connector_id)
        if r.status == "deferred" and r.next_attempt_at is not None
    )
    assert [round(seconds / 360) for seconds in parked] == [1, 2, 3]


def test_send_email_with_redis_down_sends_nothing_and_defers(ctx, resend, factory, connector_id) -> None:
    ctx.limiter = RateLimiter(redis.Redis(port=1, socket_connect_timeout=0.2), key_prefix="down:")

    outcome = sending.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    assert outcome.counts() == {"deferred": 1}
    assert sends(resend) == []


def test_send_email_learns_the_request_rate_from_ratelimit_limit(
    ctx, resend, connector_id, fake_redis, redis_prefix
) -> None:
    resend.reply(200, {"id": "e1"}, headers={"ratelimit-limit": "10"})

    sending.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    rate = fake_redis.hgetall(f"{redis_prefix}requests:{api_key_hash(API_KEY)}:rate")
    assert rate == {b"capacity": b"1", b"period_ms": b"125"}  # 10/s, one at a time, paced at 80 %


def test_send_email_skips_a_row_another_worker_is_sending(ctx, resend, factory, connector_id) -> None:
    payload = send_payload(connector_id, "ann@example.test")
    email = parse_send_email(payload)
    assert isinstance(email, SendEmailPayload)
    [message] = render_email(email, connector_id=connector_id, task_ref="t1", default_from=SENDER)
    with ctx.engine.connect() as other:
        other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ledger.lock_key(message.id)})

        outcome = sending.send_email(ctx, payload, task_ref="t1")

        other.execute(text("SELECT pg_advisory_unlock_all()"))
    assert outcome.results[0].status == "pending"
    assert sends(resend) == []


def test_send_email_resumes_existing_rows_by_message_ids(
    ctx, resend, factory, connector_id, fake_redis
) -> None:
    resend.reply(429, error_body(429, "rate_limit_exceeded", "slow"), headers={"retry-after": "600"})
    sending.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")
    [row] = rows(factory, connector_id)
    fake_redis.flushall()  # the cooldown is over
    with factory.begin() as session:
        session.get_one(EmailMessage, row.id).next_attempt_at = datetime.now(UTC)

    outcome = sending.send_email(
        ctx, {"connector_id": str(connector_id), "message_ids": [str(row.id)]}, task_ref="sweep-1"
    )

    assert outcome.counts() == {"sent": 1}
    assert sends(resend)[0].content == sends(resend)[1].content


def test_send_email_updates_task_counts_and_connector_usage(ctx, resend, factory, ids) -> None:
    organization_id, connector_id = ids
    task_id = add_task(factory, organization_id)
    add_suppressions(factory, organization_id, ["b@example.test"])

    sending.send_email(
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


# --- invalid payloads -----------------------------------------------------------------------------


def test_invalid_payload_is_recorded_as_failed_rows_with_the_reason(
    ctx, resend, factory, connector_id
) -> None:
    payload = {**send_payload(connector_id, "ann@example.test"), "subjet": "typo"}

    outcome = sending.send_email(ctx, payload, task_ref="t1")

    [row] = rows(factory, connector_id)
    assert row.status == "failed" and "subjet: unknown field" in (row.last_error or "")
    assert outcome.retry_in is None and outcome.counts() == {"failed": 1}
    assert sends(resend) == []


def test_invalid_payload_without_a_known_connector_is_audited(ctx, resend, factory) -> None:
    outcome = sending.send_email(ctx, send_payload(uuid.uuid4(), "ann@example.test"), task_ref="t9")

    with factory() as session:
        [entry] = session.scalars(select(AuditLog).where(AuditLog.target == "celery-task:t9")).all()
    assert entry.target == "celery-task:t9" and "connector_id: no connector" in (entry.reason or "")
    assert outcome.counts() == {"failed": 1}


def test_payload_without_a_sender_fails_when_the_connector_has_no_default(ctx, resend, factory) -> None:
    _, connector_id = add_connector(factory, default_from=None)

    outcome = sending.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")

    assert "from: required" in (outcome.results[0].reason or "")


# --- send_batch -----------------------------------------------------------------------------------


def test_send_batch_chunks_at_100_with_distinct_keys(ctx, resend, factory, connector_id) -> None:
    recipients = [f"r{n:03d}@example.test" for n in range(250)]

    outcome = sending.send_batch(ctx, batch_payload(connector_id, recipients), task_ref="b1")

    calls = sends(resend)
    assert [len(json.loads(c.content)) for c in calls] == [100, 100, 50]
    assert {c.url.path for c in calls} == {"/emails/batch"}
    assert len({c.headers["Idempotency-Key"] for c in calls}) == 3
    assert outcome.counts() == {"sent": 250}


def test_send_batch_sends_the_requests_it_rendered_without_validating_them_again(
    ctx, resend, factory, connector_id, monkeypatch
) -> None:
    validated = calls_to(resend_client, "parse_send_request", monkeypatch)
    recipients = [f"r{n:03d}@example.test" for n in range(3)]

    outcome = sending.send_batch(ctx, batch_payload(connector_id, recipients), task_ref="b1")

    assert outcome.counts() == {"sent": 3}
    assert validated == []
    stored = [row.request for row in rows(factory, connector_id)]  # by recipient
    assert sorted(json.loads(sends(resend)[0].content), key=lambda body: body["to"]) == stored


def test_send_batch_maps_per_index_errors_to_their_recipients(ctx, resend, factory, connector_id) -> None:
    resend.reply(
        200,
        {"data": [{"id": "e0"}, {"id": "e2"}], "errors": [{"index": 1, "message": "Invalid `to` field"}]},
    )
    recipients = ["a@example.test", "b@example.test", "c@example.test"]

    outcome = sending.send_batch(ctx, batch_payload(connector_id, recipients), task_ref="b1")

    [call] = sends(resend)  # the batch body is in the unit's canonical order: indexes follow it
    first, second, third = (item["to"][0] for item in json.loads(call.content))
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

    outcome = sending.send_batch(ctx, batch_payload(connector_id, recipients), task_ref="b1")

    [call] = sends(resend)
    assert len(json.loads(call.content)) == 63
    assert outcome.counts() == {"sent": 63, "suppressed": 37}


def test_send_batch_retry_of_a_failed_chunk_uses_the_same_key(ctx, resend, factory, connector_id) -> None:
    resend.fail(httpx.ReadTimeout("slow"))
    payload = batch_payload(connector_id, ["a@example.test", "b@example.test"])

    sending.send_batch(ctx, payload, task_ref="b1")
    sending.send_batch(ctx, payload, task_ref="b1")

    first, second = sends(resend)
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert first.content == second.content


def test_send_batch_sends_what_the_budget_allows_and_defers_the_rest(ctx, resend, factory) -> None:
    _, connector_id = add_connector(factory, per_hour=5, per_day=50)

    outcome = sending.send_batch(
        ctx, batch_payload(connector_id, [f"r{n}@example.test" for n in range(8)]), task_ref="b1"
    )

    assert outcome.counts() == {"deferred": 3, "sent": 5}


def test_send_batch_defers_the_rest_until_tokens_for_all_of_them(ctx, resend, factory) -> None:
    # 250/hour refills one token every 14.4 s: waiting for one token would be a short countdown, but the
    # ten rows left need 144 s of refill, so they are parked in PostgreSQL, not retried through the broker.
    _, connector_id = add_connector(factory, per_hour=250, per_day=2000)
    started = ctx.clock()

    outcome = sending.send_batch(
        ctx, batch_payload(connector_id, [f"r{n}@example.test" for n in range(260)]), task_ref="b2"
    )

    assert outcome.counts() == {"deferred": 10, "sent": 250}
    assert outcome.retry_in is None
    deferred = [r for r in rows(factory, connector_id) if r.status == "deferred"]
    assert all(
        r.next_attempt_at is not None and (r.next_attempt_at - started).total_seconds() >= 143
        for r in deferred
    )


# --- the single-recipient fast path ---------------------------------------------------------------


def advisory_locks(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        query = text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return int(session.scalar(query) or 0)


def test_send_email_leaves_no_advisory_lock_behind(ctx, resend, factory, connector_id) -> None:
    sending.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")
    resend.reply(503, error_body(503, "service_unavailable", "down"))
    sending.send_email(ctx, send_payload(connector_id, "bob@example.test"), task_ref="t2")

    assert advisory_locks(factory) == 0


def test_send_email_to_a_connector_paused_since_its_last_send_defers(
    ctx, resend, factory, connector_id
) -> None:
    sending.send_email(ctx, send_payload(connector_id, "ann@example.test"), task_ref="t1")  # cached now
    with factory.begin() as session:
        store.pause(session, connector_id, actor="test")

    outcome = sending.send_email(ctx, send_payload(connector_id, "bob@example.test"), task_ref="t2")

    assert outcome.counts() == {"deferred": 1}
    assert len(sends(resend)) == 1


def test_send_email_redelivered_after_sending_answers_from_the_row(
    ctx, resend, factory, connector_id
) -> None:
    payload = send_payload(connector_id, "ann@example.test")
    sending.send_email(ctx, payload, task_ref="t1")

    again = sending.send_email(ctx, payload, task_ref="t1")

    assert again.counts() == {"sent": 1} and again.results[0].resend_id == "email-0001"
    assert len(sends(resend)) == 1
