"""Scheduled sends, cancellation and attachments end to end: a real ``celery worker``, a real
``celery beat`` (which releases scheduled rows every second), PostgreSQL, Redis and the sandbox.

The sandbox records when each request reached it (``created_at``, on this host's clock) and, for
each attachment, the sha256 of the bytes it decoded.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared import connector_store as store
from shared import task_names
from shared.crypto import KeyRing, generate_key
from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import EmailMessage
from shared.settings import load_settings
from tests.conftest import create_database, drop_database
from tests.sandbox_process import SandboxHandle, free_port, running_sandbox
from tests.send_helpers import SENDER, send_payload
from tests.worker_process import isolated_redis_db, running_beat, running_worker, worker_env
from worker.celery_app import make_celery

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.serial]

#: Longest any wait may take; reaching it fails the test (it never passes by timing).
SETTLE_TIMEOUT_S = 60.0
#: How far ahead the measured send is scheduled, and how late it may reach Resend (the issue's figures).
AHEAD_S = 3.0
TOLERANCE_S = 2.0
#: A one-pixel PNG, as an inline image is usually sent.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@dataclass
class Stack:
    factory: sessionmaker[Session]
    app: Celery
    sandbox: SandboxHandle
    connector_id: uuid.UUID
    metrics_url: str

    def send(self, to: str, **fields: Any) -> None:
        kwargs = send_payload(self.connector_id, to, **fields)
        self.app.send_task(task_names.SEND_EMAIL, kwargs=kwargs, queue=task_names.PRIORITY_SENDS_QUEUE)

    def received(self, to: str) -> list[dict[str, Any]]:
        """The emails the sandbox accepted for ``to``."""
        return [email for email in self.sandbox.emails() if to in email["to"]]

    def sends_total(self, result: str) -> float:
        """The worker's ``pilot_sends_total{result=...}`` (summed over its children)."""
        text = httpx.get(self.metrics_url, timeout=10).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "pilot_sends_total" and sample.labels.get("result") == result
        )

    def status(self, to: str) -> str | None:
        with self.factory() as session:
            query = select(EmailMessage.status).where(
                EmailMessage.connector_id == self.connector_id, EmailMessage.recipient == to
            )
            return session.scalar(query)


def settle(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def address(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.test"


def seconds_ahead(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def attachment(data: bytes, filename: str, content_type: str, **extra: str) -> dict[str, str]:
    content = base64.b64encode(data).decode()
    return {"filename": filename, "content": content, "content_type": content_type, **extra}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def stack(template_database: str) -> Iterator[Stack]:
    name = f"pilot_test_sched_{uuid.uuid4().hex[:10]}"
    database_url = create_database(name, template=template_database)
    encryption_key = generate_key()
    try:
        with running_sandbox(rate_limit_per_second=0) as sandbox, isolated_redis_db() as db:
            port = free_port()  # after the sandbox took its own
            env = worker_env(
                database_url=database_url,
                redis_db=db,
                resend_base_url=sandbox.url,
                encryption_keys=encryption_key,
                PILOT_WORKER_METRICS_PORT=str(port),
            )
            settings = load_settings(
                database_url=database_url, redis_url=env["REDIS_URL"], pilot_encryption_keys=encryption_key
            )
            engine = make_engine(settings)
            factory = make_sessionmaker(engine)
            with transaction(factory) as session:
                org = store.create_organization(session, "schedule-e2e", actor="test")
                connector = store.create_connector(
                    session,
                    organization_id=org.id,
                    name="resend",
                    config={"default_from": SENDER},
                    actor="test",
                    api_key=SecretStr(f"re_sched_{uuid.uuid4().hex}"),
                    keyring=KeyRing.from_settings(settings),
                )
            app = make_celery(settings)
            with running_worker(env, concurrency=2), running_beat(env):
                s = Stack(factory, app, sandbox, connector.id, f"http://127.0.0.1:{port}/metrics")
                # Beat is ticking once a send scheduled a second ahead has left.
                warm_up = address("warm-up")
                s.send(warm_up, scheduled_at=seconds_ahead(1).isoformat())
                settle(lambda: s.received(warm_up), "beat's first release")
                yield s
            app.close()
            engine.dispose()
    finally:
        drop_database(name)


def test_a_send_scheduled_3_s_ahead_reaches_resend_within_2_s_of_its_time_never_before(stack: Stack) -> None:
    to = address("on-time")
    at = seconds_ahead(AHEAD_S)

    stack.send(to, scheduled_at=at.isoformat())
    settle(lambda: stack.received(to), "the scheduled email at the sandbox")

    [email] = stack.received(to)
    late = email["created_at"] - at.timestamp()
    assert 0 <= late <= TOLERANCE_S, f"reached the sandbox {late:+.3f} s from its scheduled time"


def test_a_send_cancelled_before_its_time_never_reaches_resend(stack: Stack) -> None:
    cancelled, kept, key = address("cancelled"), address("kept"), f"campaign/{uuid.uuid4().hex}"
    at = seconds_ahead(AHEAD_S).isoformat()
    stack.send(cancelled, scheduled_at=at, idempotency_key=key)
    stack.send(kept, scheduled_at=at)
    settle(lambda: stack.status(cancelled) == "scheduled", "the send to be scheduled")

    stack.app.send_task(
        task_names.CANCEL,
        kwargs={"connector_id": str(stack.connector_id), "idempotency_key": key},
        queue=task_names.PRIORITY_SENDS_QUEUE,
    )
    settle(lambda: stack.received(kept), "the send scheduled for the same time")

    assert stack.status(cancelled) == "cancelled"
    assert stack.received(cancelled) == []


def test_the_worker_counts_the_sends_it_cancels_in_its_metrics(stack: Stack) -> None:
    to, key = [address("counted"), address("counted")], f"campaign/{uuid.uuid4().hex}"
    before = stack.sends_total("cancelled")
    payload = send_payload(stack.connector_id, to, scheduled_at=seconds_ahead(3600).isoformat())
    stack.app.send_task(
        task_names.SEND_EMAIL,
        kwargs={**payload, "idempotency_key": key},
        queue=task_names.PRIORITY_SENDS_QUEUE,
    )
    settle(lambda: all(stack.status(a) == "scheduled" for a in to), "the sends to be scheduled")

    stack.app.send_task(
        task_names.CANCEL,
        kwargs={"connector_id": str(stack.connector_id), "idempotency_key": key},
        queue=task_names.PRIORITY_SENDS_QUEUE,
    )
    settle(lambda: stack.sends_total("cancelled") > before, "the cancel to be counted")

    assert stack.sends_total("cancelled") == before + 2
    assert [stack.status(a) for a in to] == ["cancelled", "cancelled"]


def test_attachments_and_an_inline_image_reach_resend_byte_identical(stack: Stack) -> None:
    to, pdf = address("attach"), os.urandom(300_000)

    stack.send(
        to,
        html='<p>Your invoice</p><img src="cid:logo">',
        attachments=[
            attachment(pdf, "invoice.pdf", "application/pdf"),
            attachment(PIXEL, "logo.png", "image/png", content_id="logo"),
        ],
    )
    settle(lambda: stack.received(to), "the email at the sandbox")

    [email] = stack.received(to)
    assert [(a["filename"], a.get("content_id"), a["sha256"]) for a in email["attachments"]] == [
        ("invoice.pdf", None, sha256(pdf)),
        ("logo.png", "logo", sha256(PIXEL)),
    ]


def test_a_scheduled_email_leaves_with_its_stored_attachment_bytes(stack: Stack) -> None:
    to, pdf = address("scheduled-attach"), os.urandom(100_000)

    stack.send(
        to,
        scheduled_at=seconds_ahead(1).isoformat(),
        attachments=[attachment(pdf, "report.pdf", "application/pdf")],
    )
    settle(lambda: stack.received(to), "the scheduled email at the sandbox")

    [email] = stack.received(to)
    assert [(a["filename"], a["size"], a["sha256"]) for a in email["attachments"]] == [
        ("report.pdf", len(pdf), sha256(pdf))
    ]
