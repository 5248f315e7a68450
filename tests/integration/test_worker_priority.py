"""A real worker takes transactional sends ahead of bulk sends queued before them (sandbox, Redis
broker, PostgreSQL)."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select

from shared import task_names
from shared.db import make_engine, make_sessionmaker
from shared.models import EmailMessage
from shared.settings import load_settings
from shared.task_producer import publish
from tests.sandbox_process import running_sandbox
from tests.send_helpers import add_connector, batch_payload, send_payload
from tests.worker_process import isolated_redis_db, running_worker, worker_env
from worker.celery_app import make_celery

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

BULK_TASKS = 30
SETTLE_TIMEOUT_S = 60.0


def test_a_transactional_send_queued_after_a_campaign_is_taken_first(fresh_database_url: str) -> None:
    database_url = fresh_database_url
    with running_sandbox(rate_limit_per_second=0) as sandbox, isolated_redis_db() as db:
        env = worker_env(database_url=database_url, redis_db=db, resend_base_url=sandbox.url)
        settings = load_settings(database_url=database_url, redis_url=env["REDIS_URL"])
        engine = make_engine(settings)
        factory = make_sessionmaker(engine)
        app = make_celery(settings)
        _, connector_id = add_connector(factory)
        for b in range(BULK_TASKS):
            to = [f"bulk{b}-{i}@example.test" for i in range(10)]
            publish(app, task_names.SEND_BATCH, kwargs=batch_payload(connector_id, to))
        publish(app, task_names.SEND_EMAIL, kwargs=send_payload(connector_id, "reset@example.test"))

        with running_worker(env, concurrency=1, pool="prefork"):
            rows = _wait_all_sent(factory, connector_id, BULK_TASKS * 10 + 1)
        app.close()
        engine.dispose()

    first = min(rows, key=lambda row: row.created_at)
    assert (first.recipient, first.priority) == ("reset@example.test", "transactional")
    assert {row.priority for row in rows if row is not first} == {"bulk"}


def _wait_all_sent(factory, connector_id: uuid.UUID, count: int) -> list[EmailMessage]:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        with factory() as session:
            rows = list(
                session.scalars(select(EmailMessage).where(EmailMessage.connector_id == connector_id))
            )
        if sum(row.status == "sent" for row in rows) == count:
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {sum(row.status == 'sent' for row in rows)} of {count} sent")
        time.sleep(0.1)
