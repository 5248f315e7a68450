"""Beat's ledger housekeeping, the connector status check and the outbox, on the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from shared import task_names
from shared.db import make_sessionmaker, transaction
from shared.models import AuditLog, Connector, EmailMessage
from shared.rate_limit import RateLimiter, api_key_hash
from shared.resend_client import ResendClient
from shared.sending.context import SendContext
from shared.sending.outbox import enqueue_send
from shared.sending.payloads import SendEmailPayload, parse_send_email
from shared.sending.pipeline import prepare
from shared.settings import load_settings
from tests.fake_resend import FakeResend, error_body
from tests.send_helpers import RecordingScheduler, add_connector, send_payload
from worker.beat import maintenance, status_checks

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def ctx(engine: Engine, redis_prefix: str) -> Iterator[SendContext]:
    """A send context whose fallback API key is this test's own (so its own queue)."""
    settings = load_settings(
        database_url=engine.url.render_as_string(hide_password=False),
        resend_api_key=f"re_maint_{uuid.uuid4().hex[:12]}",
    )
    limiter = RateLimiter(fakeredis.FakeRedis(), key_prefix=redis_prefix)
    context = SendContext(
        settings=settings,
        engine=engine,
        limiter=limiter,
        http=FakeResend().client(),
        scheduler=RecordingScheduler(),
    )
    yield context
    context.release()


def woken(ctx: SendContext) -> set[str]:
    """The keys whose dispatch beat asked for."""
    assert isinstance(ctx.scheduler, RecordingScheduler)
    return {key for key, _ in ctx.scheduler.calls}


def queue_of(ctx: SendContext) -> str:
    key = ctx.settings.resend_api_key
    assert key is not None
    return api_key_hash(key.get_secret_value())


def add_row(factory: sessionmaker[Session], connector_id: uuid.UUID, **values: Any) -> uuid.UUID:
    """A rendered ledger row for one recipient (in no queue, as the outbox writes it), then ``values``."""
    payload = parse_send_email(send_payload(connector_id, f"{uuid.uuid4().hex[:8]}@example.test"))
    assert isinstance(payload, SendEmailPayload)
    with transaction(factory) as session:
        _, [row_id] = prepare(session, payload, task_ref=uuid.uuid4().hex)
    if values:
        with transaction(factory) as session:
            session.execute(update(EmailMessage).where(EmailMessage.id == row_id).values(**values))
    return row_id


def status(factory: sessionmaker[Session], row_id: uuid.UUID) -> EmailMessage:
    with factory() as session:
        return session.get_one(EmailMessage, row_id)


def test_release_deferred_queues_due_rows_only_and_wakes_their_queue(factory, ctx) -> None:
    _, connector_id = add_connector(factory)
    key = queue_of(ctx)
    due = add_row(
        factory, connector_id, status="deferred", next_attempt_at=NOW - timedelta(seconds=1), dispatch_key=key
    )
    other = add_row(
        factory,
        connector_id,
        status="deferred",
        next_attempt_at=NOW + timedelta(hours=1),
        dispatch_key="a" * 20,
    )

    released = maintenance.release_deferred(factory, ctx, now=NOW)

    assert released >= 1 and key in woken(ctx) and "a" * 20 not in woken(ctx)
    assert (status(factory, due).status, status(factory, other).status) == ("queued", "deferred")


def test_release_deferred_gives_rows_without_a_queue_their_connectors(factory, ctx) -> None:
    _, connector_id = add_connector(factory)
    row_id = add_row(factory, connector_id, status="deferred", next_attempt_at=NOW - timedelta(seconds=1))

    maintenance.release_deferred(factory, ctx, now=NOW)

    assert status(factory, row_id).dispatch_key == queue_of(ctx)
    assert queue_of(ctx) in woken(ctx)


def test_sweep_wakes_the_queue_of_queued_rows_nobody_touched(factory, ctx) -> None:
    _, connector_id = add_connector(factory)
    stale = add_row(factory, connector_id, updated_at=NOW - timedelta(hours=1))
    fresh = add_row(factory, connector_id, updated_at=NOW, dispatch_key="b" * 20)

    maintenance.sweep(factory, ctx, now=NOW)

    assert status(factory, stale).dispatch_key == queue_of(ctx)
    assert queue_of(ctx) in woken(ctx) and status(factory, fresh).dispatch_key not in woken(ctx)


def stale_sending(
    factory: sessionmaker[Session], connector_id: uuid.UUID, created: datetime, **values: Any
) -> uuid.UUID:
    """A row sent under the old send path (no lease) whose sender is long gone."""
    return add_row(
        factory,
        connector_id,
        status="sending",
        attempts=1,
        attempt_key=f"legacy/{uuid.uuid4()}",
        created_at=created,
        updated_at=NOW - timedelta(hours=1),
        **values,
    )


def test_reconcile_wakes_units_in_flight_too_long_and_gives_up_past_the_idempotency_window(
    factory, ctx
) -> None:
    _, connector_id = add_connector(factory)
    recent = stale_sending(factory, connector_id, NOW - timedelta(hours=2))
    old = stale_sending(
        factory, connector_id, NOW - timedelta(days=2), next_attempt_at=NOW - timedelta(hours=1)
    )

    woke, gave_up = maintenance.reconcile(factory, ctx, now=NOW)

    assert (woke, gave_up) == (1, 1)
    assert status(factory, recent).dispatch_key == queue_of(ctx) and queue_of(ctx) in woken(ctx)
    failed = status(factory, old)
    assert failed.status == "failed" and (failed.last_error or "").startswith("needs attention")


def test_reconcile_does_not_give_up_on_a_unit_a_live_dispatcher_holds(factory, ctx, engine) -> None:
    _, connector_id = add_connector(factory)
    old = stale_sending(factory, connector_id, NOW - timedelta(days=2))
    unit = status(factory, old).attempt_key
    with engine.connect() as live:
        live.execute(text("SELECT pg_advisory_lock(hashtextextended(:unit, 7))"), {"unit": unit})

        maintenance.reconcile(factory, ctx, now=NOW)

        live.execute(text("SELECT pg_advisory_unlock_all()"))
    assert status(factory, old).status == "sending"


def test_reconcile_wakes_the_queue_of_a_unit_whose_retry_nobody_ran(factory, ctx) -> None:
    _, connector_id = add_connector(factory)
    key = queue_of(ctx)
    stale_sending(
        factory,
        connector_id,
        NOW - timedelta(hours=2),
        next_attempt_at=NOW - timedelta(hours=1),
        dispatch_key=key,
    )

    maintenance.reconcile(factory, ctx, now=NOW)

    assert key in woken(ctx)


def test_reconcile_leaves_a_unit_in_flight_alone(factory, ctx) -> None:
    _, connector_id = add_connector(factory)
    leased = stale_sending(
        factory,
        connector_id,
        NOW - timedelta(hours=2),
        next_attempt_at=NOW + timedelta(minutes=4),
        dispatch_key="c" * 20,
    )

    maintenance.reconcile(factory, ctx, now=NOW)

    assert status(factory, leased).next_attempt_at == NOW + timedelta(minutes=4)
    assert "c" * 20 not in woken(ctx)


# --- connector status checks ------------------------------------------------------------------


def check(factory: sessionmaker[Session], resend: FakeResend) -> list[status_checks.CheckOutcome]:
    http = resend.client()
    return status_checks.check_connectors(
        factory,
        lambda key: ResendClient(http=http, api_key=key),
        keyring=None,
        fallback_key=SecretStr("re_check_key"),
        now=NOW,
    )


def connector(factory: sessionmaker[Session], connector_id: uuid.UUID) -> Connector:
    with factory() as session:
        return session.get_one(Connector, connector_id)


def test_status_check_passing_resumes_a_connector_in_error_and_audits_it(factory) -> None:
    _, connector_id = add_connector(factory, status="error")

    check(factory, FakeResend())

    after = connector(factory, connector_id)
    assert (after.status, after.last_error, after.last_checked_at) == ("active", None, NOW)
    with factory() as session:
        actions = session.scalars(select(AuditLog.reason).where(AuditLog.connector_id == connector_id)).all()
    assert "status check passed" in actions


def test_status_check_rejected_key_moves_the_connector_to_error(factory) -> None:
    resend = FakeResend()
    for _ in range(50):  # every connector checked in this database gets the same answer
        resend.reply(403, error_body(403, "invalid_api_key", "API key is invalid"))
    _, connector_id = add_connector(factory)

    check(factory, resend)

    after = connector(factory, connector_id)
    assert after.status == "error" and "API key is invalid" in (after.last_error or "")


def test_status_check_server_error_records_it_without_changing_status(factory) -> None:
    resend = FakeResend()
    for _ in range(50):
        resend.reply(500, error_body(500, "internal_server_error", "boom"))
    _, connector_id = add_connector(factory)

    check(factory, resend)

    after = connector(factory, connector_id)
    assert after.status == "active" and "boom" in (after.last_error or "")


def test_status_check_leaves_a_paused_connector_alone(factory) -> None:
    _, connector_id = add_connector(factory, status="paused")

    check(factory, FakeResend())

    assert connector(factory, connector_id).last_checked_at is None


# --- outbox ------------------------------------------------------------------------------------


class Broker:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.queues: list[str | None] = []

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        self.sent.append((name, kwargs))
        self.queues.append(options.get("queue"))


def test_outbox_publishes_after_commit_with_the_new_rows(factory) -> None:
    _, connector_id = add_connector(factory)
    broker = Broker()

    with transaction(factory) as session:
        ids = enqueue_send(
            session,
            broker,
            connector_id=str(connector_id),
            to=["a@x.test", "b@x.test"],
            subject="Hi",
            html="<p>x</p>",
        )
        assert broker.sent == []  # nothing leaves before the commit

    assert broker.sent == [
        (task_names.SEND_EMAIL, {"connector_id": str(connector_id), "message_ids": [str(i) for i in ids]})
    ]
    assert {status(factory, i).status for i in ids} == {"queued"}


@pytest.mark.parametrize(
    ("fields", "queue"),
    [
        ({}, task_names.PRIORITY_SENDS_QUEUE),
        ({"priority": "bulk"}, task_names.SENDS_QUEUE),
        ({"cc": [f"c{n}@x.test" for n in range(5)]}, task_names.SENDS_QUEUE),
    ],
    ids=["transactional", "said-bulk", "six-addresses"],
)
def test_outbox_publishes_to_the_queue_of_the_emails_class(factory, fields, queue) -> None:
    _, connector_id = add_connector(factory)
    broker = Broker()

    with transaction(factory) as session:
        enqueue_send(
            session, broker, connector_id=str(connector_id), to="a@x.test", subject="Hi", text="x", **fields
        )

    assert broker.queues == [queue]


def test_outbox_rolled_back_publishes_nothing(factory) -> None:
    _, connector_id = add_connector(factory)
    broker = Broker()

    with pytest.raises(RuntimeError), transaction(factory) as session:
        enqueue_send(session, broker, connector_id=str(connector_id), to="a@x.test", subject="Hi", text="x")
        raise RuntimeError("the upstream transaction fails")

    assert broker.sent == []
