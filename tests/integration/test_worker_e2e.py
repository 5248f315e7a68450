"""End to end: a real ``celery worker`` (prefork, 2 children), PostgreSQL, Redis and the sandbox.

One worker, sandbox and database serve the module; each scenario has its own organization,
connector and API key (so cooldowns and learnt rates never leak between scenarios) and its own
recipients. Deliveries are counted by the sandbox, per recipient.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from celery import Celery
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared import connector_store as store
from shared import task_names
from shared.crypto import KeyRing, generate_key
from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import EmailMessage
from shared.sending.outbox import enqueue_send
from shared.settings import Settings, load_settings
from tests.conftest import create_database, drop_database
from tests.recording_proxy import RecordingProxy, recording_proxy
from tests.sandbox_process import SandboxHandle, running_sandbox
from tests.send_helpers import SENDER, add_suppressions, batch_payload, send_payload
from tests.worker_process import WorkerHandle, isolated_redis_db, running_worker, worker_env
from worker.celery_app import make_celery

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

#: Longest any scenario may take to settle; reaching it fails the test (it never passes by timing).
SETTLE_TIMEOUT_S = 60.0


@dataclass
class Stack:
    """The running pieces and what the test side needs to drive them."""

    settings: Settings
    factory: sessionmaker[Session]
    app: Celery
    sandbox: SandboxHandle
    proxy: RecordingProxy
    worker: WorkerHandle
    keyring: KeyRing
    broker: redis.Redis

    def connector(self, **config: Any) -> tuple[uuid.UUID, uuid.UUID]:
        """A new organization and connector with an API key of its own."""
        with transaction(self.factory) as session:
            org = store.create_organization(session, f"e2e-{uuid.uuid4().hex[:8]}", actor="test")
            connector = store.create_connector(
                session,
                organization_id=org.id,
                name="resend",
                config={"default_from": SENDER, **config},
                actor="test",
                api_key=SecretStr(f"re_e2e_{uuid.uuid4().hex}"),
                keyring=self.keyring,
            )
            return org.id, connector.id

    def publish(self, name: str, kwargs: dict[str, Any], task_id: str | None = None) -> None:
        self.app.send_task(name, kwargs=kwargs, task_id=task_id)

    def statuses(self, connector_id: uuid.UUID) -> Counter[str]:
        with self.factory() as session:
            query = select(EmailMessage.status, func.count()).where(EmailMessage.connector_id == connector_id)
            return Counter({status: n for status, n in session.execute(query.group_by(EmailMessage.status))})

    def deliveries(self, recipients: list[str]) -> Counter[str]:
        """Emails the sandbox accepted for each of ``recipients``."""
        wanted = set(recipients)
        return Counter(to for email in self.sandbox.emails() for to in email["to"] if to in wanted)

    def drained(self) -> bool:
        """No message waiting, held unacked, or scheduled (countdown) on the broker."""
        queued = sum(self.broker.llen(q) for q in task_names.CONSUMED_QUEUES)
        return queued == 0 and self.broker.hlen("unacked") == 0


def settle(condition: Callable[[], bool], what: str, timeout: float = SETTLE_TIMEOUT_S) -> None:
    """Wait until ``condition()`` holds; fail naming ``what`` if it does not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def stack(template_database: str) -> Iterator[Stack]:
    name = f"pilot_test_e2e_{uuid.uuid4().hex[:10]}"
    database_url = create_database(name, template=template_database)
    encryption_key = generate_key()
    try:
        with (
            running_sandbox(rate_limit_per_second=0) as sandbox,
            recording_proxy(sandbox.url) as (proxy_url, proxy),
            isolated_redis_db() as db,
        ):
            env = worker_env(
                database_url=database_url,
                redis_db=db,
                resend_base_url=proxy_url,
                encryption_keys=encryption_key,
            )
            settings = load_settings(
                database_url=database_url,
                redis_url=env["REDIS_URL"],
                pilot_encryption_keys=encryption_key,
            )
            engine = make_engine(settings)
            broker = redis.Redis.from_url(env["REDIS_URL"])
            app = make_celery(settings)
            with running_worker(env, concurrency=2, pool="prefork") as worker:
                yield Stack(
                    settings,
                    make_sessionmaker(engine),
                    app,
                    sandbox,
                    proxy,
                    worker,
                    KeyRing.from_settings(settings),
                    broker,
                )
            app.close()
            broker.close()
            engine.dispose()
    finally:
        drop_database(name)


def recipients(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i:04d}-{uuid.uuid4().hex[:6]}@example.test" for i in range(n)]


def test_e2e_200_sends_are_each_delivered_exactly_once(stack: Stack) -> None:
    _, connector_id = stack.connector()
    to = recipients("bulk", 200)

    for address in to:
        stack.publish(task_names.SEND_EMAIL, send_payload(connector_id, address))
    settle(lambda: stack.statuses(connector_id)["sent"] == 200, "200 rows sent")

    assert stack.deliveries(to) == Counter({address: 1 for address in to})


def test_e2e_each_task_published_twice_is_delivered_once(stack: Stack) -> None:
    _, connector_id = stack.connector()
    to = recipients("twice", 50)

    for address in to:
        task_id = str(uuid.uuid4())
        stack.publish(task_names.SEND_EMAIL, send_payload(connector_id, address), task_id=task_id)
        stack.publish(task_names.SEND_EMAIL, send_payload(connector_id, address), task_id=task_id)
    settle(lambda: stack.statuses(connector_id)["sent"] == 50 and stack.drained(), "both copies processed")

    assert stack.deliveries(to) == Counter({address: 1 for address in to})
    assert sum(stack.statuses(connector_id).values()) == 50


def test_e2e_worker_child_killed_mid_send_five_times_loses_and_duplicates_nothing(stack: Stack) -> None:
    _, connector_id = stack.connector()
    to = recipients("kill", 30)
    stack.sandbox.configure(latency=0.4)  # each send spends most of its time inside the HTTP call
    try:
        for address in to:
            stack.publish(task_names.SEND_EMAIL, send_payload(connector_id, address))
        kills = 0
        while kills < 5:
            settle(lambda: stack.statuses(connector_id)["sending"] > 0, "a send in progress")
            try:
                os.kill(stack.worker.child_pids()[0], signal.SIGKILL)
            except (IndexError, ProcessLookupError):
                continue  # that child was already being replaced: no kill happened, try again
            kills += 1
            settle(lambda: len(stack.worker.child_pids()) == 2, "the pool to replace its child")
        settle(lambda: stack.statuses(connector_id)["sent"] == 30 and stack.drained(), "every email sent")
    finally:
        stack.sandbox.configure(latency=0.0)

    assert stack.statuses(connector_id) == Counter({"sent": 30})
    assert stack.deliveries(to) == Counter({address: 1 for address in to})


def test_e2e_batch_with_37_suppressed_of_100_delivers_63_and_explains_37(stack: Stack) -> None:
    org_id, connector_id = stack.connector()
    to = recipients("batch", 100)
    add_suppressions(stack.factory, org_id, [address.upper() for address in to[:37]])

    stack.publish(task_names.SEND_BATCH, batch_payload(connector_id, to))
    settle(lambda: stack.statuses(connector_id) == Counter({"sent": 63, "suppressed": 37}), "the batch done")

    assert sum(stack.deliveries(to).values()) == 63 and not stack.deliveries(to[:37])
    with stack.factory() as session:
        reasons = session.scalars(
            select(EmailMessage.last_error).where(
                EmailMessage.connector_id == connector_id, EmailMessage.status == "suppressed"
            )
        ).all()
    assert len(reasons) == 37 and all(r and r.startswith("suppressed: hard_bounce since ") for r in reasons)


def test_e2e_connector_at_50_an_hour_given_80_sends_sends_50_and_defers_30(stack: Stack) -> None:
    _, connector_id = stack.connector(rate_limit_per_hour=50, rate_limit_per_day=500)
    to = recipients("budget", 80)

    for address in to:
        stack.publish(task_names.SEND_EMAIL, send_payload(connector_id, address))
    settle(
        lambda: stack.statuses(connector_id) == Counter({"sent": 50, "deferred": 30}), "50 sent, 30 deferred"
    )

    assert sum(stack.deliveries(to).values()) == 50
    with stack.factory() as session:
        attempts = session.scalars(
            select(EmailMessage.attempts).where(
                EmailMessage.connector_id == connector_id, EmailMessage.status == "deferred"
            )
        ).all()
    assert set(attempts) == {0}  # deferral never uses an attempt


def test_e2e_a_429_is_never_retried_before_its_retry_after(stack: Stack) -> None:
    _, connector_id = stack.connector()
    to = recipients("slow", 4)
    stack.sandbox.configure(rate_limit_per_second=0.5)  # one request per 2-second window
    start = len(stack.proxy.exchanges)
    try:
        for address in to:
            stack.publish(task_names.SEND_EMAIL, send_payload(connector_id, address))
        settle(lambda: stack.statuses(connector_id)["sent"] == 4, "every email sent")
    finally:
        stack.sandbox.configure(rate_limit_per_second=0)

    exchanges = [e for e in stack.proxy.exchanges[start:] if e.path in ("/emails", "/emails/batch")]
    refused = [e for e in exchanges if e.status == 429]
    assert refused, "the scenario needs at least one 429"
    for answer in refused:  # its emails go again, in whatever unit, only after the retry-after
        later = [
            e for e in exchanges if e.started > answer.started and set(e.recipients) & set(answer.recipients)
        ]
        assert later and min(e.started for e in later) >= answer.answered + (answer.retry_after or 0)
    assert stack.deliveries(to) == Counter({address: 1 for address in to})


def test_e2e_invalid_payload_is_recorded_as_failed_with_its_reason(stack: Stack) -> None:
    _, connector_id = stack.connector()
    [address] = recipients("invalid", 1)

    stack.publish(task_names.SEND_EMAIL, {**send_payload(connector_id, address), "urgency": "high"})
    settle(lambda: stack.statuses(connector_id)["failed"] == 1, "the failure recorded")

    with stack.factory() as session:
        row = session.scalars(select(EmailMessage).where(EmailMessage.connector_id == connector_id)).one()
    assert row.recipient == address and "urgency: unknown field" in (row.last_error or "")
    assert not stack.deliveries([address])


def test_e2e_outbox_rows_are_sent_after_commit(stack: Stack) -> None:
    _, connector_id = stack.connector()
    to = recipients("outbox", 3)

    with transaction(stack.factory) as session:
        enqueue_send(session, stack.app, connector_id=str(connector_id), to=to, subject="Hi", html="<p>x</p>")
    settle(lambda: stack.statuses(connector_id)["sent"] == 3, "the outbox rows sent")

    assert stack.deliveries(to) == Counter({address: 1 for address in to})
