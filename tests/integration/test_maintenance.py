"""Beat's ledger housekeeping, the connector status check and the outbox, on the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from shared import task_names
from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import AuditLog, Connector, EmailMessage
from shared.resend_client import ResendClient
from shared.settings import load_settings
from tests.conftest import create_database, drop_database
from tests.fake_resend import FakeResend, error_body
from tests.send_helpers import add_connector, send_payload
from worker import ledger, maintenance, status_checks
from worker.outbox import enqueue_send
from worker.payloads import SendEmailPayload, parse_send_email
from worker.sending import prepare

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def engine(template_database: str) -> Iterator[Engine]:
    name = f"pilot_test_maint_{uuid.uuid4().hex[:10]}"
    engine = make_engine(load_settings(database_url=create_database(name, template=template_database)))
    yield engine
    engine.dispose()
    drop_database(name)


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


class Published(list[tuple[str, dict[str, Any]]]):
    def __call__(self, name: str, kwargs: dict[str, Any]) -> None:
        self.append((name, kwargs))

    def ids(self) -> set[str]:
        return {i for _, kwargs in self for i in kwargs["message_ids"]}


def add_row(factory: sessionmaker[Session], connector_id: uuid.UUID, **values: Any) -> uuid.UUID:
    """A rendered ledger row for one recipient, then ``values`` set on it."""
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


def test_release_deferred_queues_and_publishes_due_rows_only(factory) -> None:
    _, connector_id = add_connector(factory)
    due = add_row(factory, connector_id, status="deferred", next_attempt_at=NOW - timedelta(seconds=1))
    later = add_row(factory, connector_id, status="deferred", next_attempt_at=NOW + timedelta(hours=1))
    published = Published()

    maintenance.release_deferred(factory, published, now=NOW)

    assert published.ids() >= {str(due)} and str(later) not in published.ids()
    assert {name for name, _ in published} == {task_names.SEND_EMAIL}
    assert (status(factory, due).status, status(factory, later).status) == ("queued", "deferred")


def test_sweep_republishes_queued_rows_nobody_touched(factory) -> None:
    _, connector_id = add_connector(factory)
    stale = add_row(factory, connector_id)
    with transaction(factory) as session:
        session.execute(
            update(EmailMessage).where(EmailMessage.id == stale).values(updated_at=NOW - timedelta(hours=1))
        )
    fresh = add_row(factory, connector_id)
    published = Published()

    maintenance.sweep(factory, published, now=NOW)

    assert str(stale) in published.ids() and str(fresh) not in published.ids()


def stale_sending(factory: sessionmaker[Session], connector_id: uuid.UUID, created: datetime) -> uuid.UUID:
    row_id = add_row(factory, connector_id)
    with transaction(factory) as session:
        session.execute(
            update(EmailMessage)
            .where(EmailMessage.id == row_id)
            .values(status="sending", attempts=1, created_at=created, updated_at=NOW - timedelta(hours=1))
        )
    return row_id


def test_reconcile_resends_within_the_idempotency_window_and_gives_up_after(factory) -> None:
    _, connector_id = add_connector(factory)
    recent = stale_sending(factory, connector_id, NOW - timedelta(hours=2))
    old = stale_sending(factory, connector_id, NOW - timedelta(days=2))
    published = Published()

    maintenance.reconcile(factory, published, now=NOW)

    assert str(recent) in published.ids() and str(old) not in published.ids()
    gave_up = status(factory, old)
    assert gave_up.status == "failed" and (gave_up.last_error or "").startswith("needs attention")


def test_reconcile_leaves_a_row_whose_sender_is_alive(factory, engine) -> None:
    _, connector_id = add_connector(factory)
    row_id = stale_sending(factory, connector_id, NOW - timedelta(hours=2))
    published = Published()
    with engine.connect() as sender:
        sender.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ledger.lock_key(row_id)})

        maintenance.reconcile(factory, published, now=NOW)

        sender.execute(text("SELECT pg_advisory_unlock_all()"))
    assert str(row_id) not in published.ids()


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

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        self.sent.append((name, kwargs))


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


def test_outbox_rolled_back_publishes_nothing(factory) -> None:
    _, connector_id = add_connector(factory)
    broker = Broker()

    with pytest.raises(RuntimeError), transaction(factory) as session:
        enqueue_send(session, broker, connector_id=str(connector_id), to="a@x.test", subject="Hi", text="x")
        raise RuntimeError("the upstream transaction fails")

    assert broker.sent == []
