"""No recipient address whole in INFO logs: a real send and its webhooks through the worker and the
receiver, both logging at INFO, leave addresses only masked (``d***@resend.dev``) and ledger ids."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared import task_names
from shared.models import EmailMessage, WebhookEvent
from shared.settings import load_settings
from tests.receiver_process import running_receiver
from tests.sandbox_process import running_sandbox
from tests.send_helpers import add_connector, batch_payload, send_payload
from tests.webhook_requests import SECRET_A
from tests.worker_process import ALL_QUEUES, isolated_redis_db, running_worker, worker_env
from worker.celery_app import make_celery

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SETTLE_TIMEOUT_S = 60.0
DELIVERED = "delivered@resend.dev"
BOUNCED = "bounced@resend.dev"
REFUSED = "ada.lovelace@example.com"


def settle(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def all_events_processed(factory: sessionmaker[Session]) -> bool:
    with factory() as session:
        events = session.execute(select(WebhookEvent.type, WebhookEvent.processed_at)).all()
    types = {event.type for event in events}
    done = {"email.delivered", "email.bounced"} <= types
    return done and all(event.processed_at is not None for event in events)


def test_a_send_and_its_webhooks_log_no_full_address_at_info(
    fresh_database_url: str, session_factory: sessionmaker[Session]
) -> None:
    with isolated_redis_db() as db:
        env = worker_env(
            database_url=fresh_database_url,
            redis_db=db,
            resend_base_url="http://unset",
            PILOT_LOG_LEVEL="INFO",
        )
        with (
            running_receiver(
                database_url=fresh_database_url,
                broker_url=env["CELERY_BROKER_URL"],
                secret=SECRET_A,
                log_level="INFO",
            ) as receiver,
            running_sandbox(
                rate_limit_per_second=0, webhook_url=receiver.webhook_url, webhook_secret=SECRET_A
            ) as sandbox,
        ):
            env["RESEND_BASE_URL"] = sandbox.url
            queues = (*ALL_QUEUES, task_names.EVENTS_QUEUE)
            with running_worker(env, concurrency=2, queues=queues) as worker:
                app = make_celery(load_settings(database_url=fresh_database_url, redis_url=env["REDIS_URL"]))
                try:
                    _, connector_id = add_connector(session_factory)
                    app.send_task(task_names.SEND_EMAIL, kwargs=send_payload(connector_id, DELIVERED))
                    app.send_task(task_names.SEND_EMAIL, kwargs=send_payload(connector_id, BOUNCED))
                    # An email of a batch refused alone, naming its fields in the log.
                    bad = batch_payload(connector_id, [REFUSED])
                    bad["emails"][0]["subject"] = ""
                    app.send_task(task_names.SEND_BATCH, kwargs=bad)
                    settle(lambda: all_events_processed(session_factory), "the webhooks")
                finally:
                    app.close()
                worker_log = worker.log()
            receiver_log = receiver.output()
    with session_factory() as session:
        message_ids = [str(i) for i in session.scalars(select(EmailMessage.id))]

    logs = worker_log + receiver_log
    assert "succeeded" in worker_log, worker_log  # Celery's INFO lines were written
    for address in (DELIVERED, BOUNCED, REFUSED):
        assert address not in logs
    assert "d***@resend.dev" in worker_log
    assert any(message_id in worker_log for message_id in message_ids)
