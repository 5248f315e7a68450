"""End to end, as an upstream app sees it: ``examples/upstream_app.py`` sends with the client and prints
the outcome events a real worker, beat, receiver and the sandbox send back; and a plain ``send_task``
without a queue (Celery's default queue) is consumed and sent, not left behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared import task_names
from shared.models import EmailMessage
from tests.receiver_process import running_receiver
from tests.sandbox_process import running_sandbox
from tests.send_helpers import add_connector, send_payload
from tests.webhook_requests import SECRET_A
from tests.worker_process import isolated_redis_db, running_beat, running_worker, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "upstream_app.py"
SETTLE_TIMEOUT_S = 60.0


@dataclass
class Stack:
    broker_url: str
    factory: sessionmaker[Session]


@pytest.fixture(scope="module")
def stack(template_database: str) -> Iterator[Stack]:
    from shared.db import make_engine, make_sessionmaker
    from shared.settings import load_settings
    from tests.conftest import create_database, drop_database

    database_url = create_database(f"pilot_test_upstream_{uuid.uuid4().hex[:10]}", template=template_database)
    try:
        with isolated_redis_db() as db:
            env = worker_env(database_url=database_url, redis_db=db, resend_base_url="http://unset")
            with (
                running_receiver(
                    database_url=database_url, broker_url=env["CELERY_BROKER_URL"], secret=SECRET_A
                ) as receiver,
                running_sandbox(
                    rate_limit_per_second=0, webhook_url=receiver.webhook_url, webhook_secret=SECRET_A
                ) as sandbox,
            ):
                env["RESEND_BASE_URL"] = sandbox.url
                engine = make_engine(load_settings(database_url=database_url, redis_url=env["REDIS_URL"]))
                with running_worker(env, concurrency=2, queues=task_names.CONSUMED_QUEUES), running_beat(env):
                    yield Stack(env["CELERY_BROKER_URL"], make_sessionmaker(engine))
                engine.dispose()
    finally:
        drop_database(database_url)


def settle(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_the_example_app_sends_and_prints_each_recipients_outcomes(stack: Stack) -> None:
    _, connector = add_connector(stack.factory)
    recipients = ["delivered@resend.dev", "bounced@resend.dev"]
    argv = [sys.executable, str(EXAMPLE), "--broker", stack.broker_url, "--connector", str(connector)]
    argv += [arg for to in recipients for arg in ("--to", to)] + ["--idle", str(SETTLE_TIMEOUT_S)]

    done = subprocess.run(argv, capture_output=True, text=True, timeout=2 * SETTLE_TIMEOUT_S)

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("sent pilot.send_email ")
    events = [json.loads(line.split(" ", 1)[1]) for line in lines[1:]]
    seen = {(event["recipient"], event["kind"]) for event in events}
    assert {
        ("delivered@resend.dev", "queued"),
        ("delivered@resend.dev", "sent"),
        ("delivered@resend.dev", "delivered"),
        ("bounced@resend.dev", "sent"),
        ("bounced@resend.dev", "bounced"),
    } <= seen
    assert {event["metadata"]["source"] for event in events} == {"example"}
    assert all(event["idempotency_key"].startswith("example/") for event in events)
    assert len({event["event_id"] for event in events}) == len(events)


def test_a_send_task_on_celerys_default_queue_is_consumed_and_sent(stack: Stack) -> None:
    _, connector = add_connector(stack.factory)
    plain = Celery("plain-upstream", broker=stack.broker_url)  # no queue, no routes: queue "celery"
    try:
        plain.send_task(task_names.SEND_EMAIL, kwargs=send_payload(connector, "delivered@resend.dev"))
    finally:
        plain.close()

    def sent() -> bool:
        with stack.factory() as session:
            query = select(EmailMessage.status).where(EmailMessage.connector_id == connector)
            return list(session.scalars(query)) in (["sent"], ["delivered"])

    settle(sent, "the send published on the default queue")
