"""The loop closed end to end: worker → sandbox (Resend) → signed webhook → receiver → worker.

A send to ``bounced@resend.dev`` ends suppressed, and the next send to it is skipped without an
HTTP call to the sandbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared import task_names
from shared.models import EmailMessage, Suppression, WebhookEvent
from shared.settings import load_settings
from tests.receiver_process import running_receiver
from tests.sandbox_process import running_sandbox
from tests.send_helpers import add_connector, send_payload
from tests.webhook_requests import SECRET_A
from tests.worker_process import ALL_QUEUES, isolated_redis_db, running_worker, worker_env
from worker.celery_app import make_celery

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

#: Longest the loop may take; reaching it fails the test (it never passes by timing).
SETTLE_TIMEOUT_S = 60.0
BOUNCED = "bounced@resend.dev"


def settle(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def statuses(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return list(session.scalars(select(EmailMessage.status).order_by(EmailMessage.created_at)))


def suppression_reason(factory: sessionmaker[Session]) -> str | None:
    with factory() as session:
        return session.scalars(select(Suppression.reason).where(Suppression.email == BOUNCED)).first()


def sent_and_bounce_events_processed(factory: sessionmaker[Session]) -> bool:
    with factory() as session:
        events = session.execute(select(WebhookEvent.type, WebhookEvent.processed_at)).all()
    stored = {"email.sent", "email.bounced"} <= {event.type for event in events}
    return stored and all(event.processed_at is not None for event in events)


def test_e2e_bounced_address_ends_suppressed_and_next_send_makes_no_http_call(
    fresh_database_url: str, session_factory: sessionmaker[Session]
) -> None:
    with isolated_redis_db() as db:
        env = worker_env(database_url=fresh_database_url, redis_db=db, resend_base_url="http://unset")
        with (
            running_receiver(
                database_url=fresh_database_url, broker_url=env["CELERY_BROKER_URL"], secret=SECRET_A
            ) as receiver,
            running_sandbox(
                rate_limit_per_second=0, webhook_url=receiver.webhook_url, webhook_secret=SECRET_A
            ) as sandbox,
        ):
            env["RESEND_BASE_URL"] = sandbox.url
            queues = (*ALL_QUEUES, task_names.EVENTS_QUEUE)
            with running_worker(env, concurrency=2, queues=queues):
                app = make_celery(load_settings(database_url=fresh_database_url, redis_url=env["REDIS_URL"]))
                try:
                    _, connector_id = add_connector(session_factory)
                    # Given a send to the address the sandbox hard-bounces
                    app.send_task(task_names.SEND_EMAIL, kwargs=send_payload(connector_id, BOUNCED))
                    # Then the bounce comes back through the receiver and suppresses the address
                    settle(lambda: suppression_reason(session_factory) == "hard_bounce", "the hard bounce")
                    settle(lambda: statuses(session_factory) == ["bounced"], "the message bounced")
                    # When the address is sent to again
                    app.send_task(
                        task_names.SEND_EMAIL, kwargs=send_payload(connector_id, BOUNCED, subject="Again")
                    )
                    settle(lambda: statuses(session_factory) == ["bounced", "suppressed"], "the second send")
                    # The first email's email.sent may arrive after its bounce: wait for every event.
                    settle(lambda: sent_and_bounce_events_processed(session_factory), "the webhooks")
                finally:
                    app.close()
            # Then the sandbox saw one email only, and every webhook was processed
            assert [email["to"] for email in sandbox.emails()] == [[BOUNCED]]
    with session_factory() as session:
        events = session.execute(
            select(WebhookEvent.type, WebhookEvent.processed_at, WebhookEvent.error)
        ).all()
    assert {event.type for event in events} >= {"email.sent", "email.bounced"}
    assert all(event.processed_at is not None and event.error is None for event in events)
