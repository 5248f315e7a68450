"""The reputation guard end to end: a real worker, the sandbox's test addresses, signed webhooks
through the receiver. One organization's bad list pauses its campaign early; another organization on
the same API key and its own transactional mail go on. The sandbox repeats and reorders webhooks."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from celery import Celery
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared import connector_store as store
from shared import task_names
from shared.crypto import KeyRing, generate_key
from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import EmailMessage, Task
from shared.reputation.guard import HOLD_PREFIX
from shared.settings import load_settings
from tests.conftest import create_database, drop_database
from tests.receiver_process import running_receiver
from tests.reputation_helpers import state_of
from tests.sandbox_process import running_sandbox
from tests.send_helpers import SENDER, batch_payload, send_payload
from tests.webhook_requests import SECRET_A
from tests.worker_process import ALL_QUEUES, isolated_redis_db, running_worker, worker_env
from worker.celery_app import make_celery

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.serial]

#: Longest any wait may take; reaching it fails the test (it never passes by timing).
SETTLE_TIMEOUT_S = 120.0
CAMPAIGN = 2000
#: The campaign's rows that may go out before it is stopped.
STOPPED_WITHIN = 500
REQUESTS_PER_SECOND = 0.5


@dataclass
class Stack:
    factory: sessionmaker[Session]
    app: Celery
    keyring: KeyRing

    def organization(self, api_key: str) -> tuple[uuid.UUID, uuid.UUID]:
        """A new organization and a connector using ``api_key``."""
        with transaction(self.factory) as session:
            org = store.create_organization(session, f"rep-{uuid.uuid4().hex[:8]}", actor="test")
            connector = store.create_connector(
                session,
                organization_id=org.id,
                name="resend",
                config={
                    "default_from": SENDER,
                    "rate_limit_per_hour": 100_000,
                    "rate_limit_per_day": 100_000,
                },
                actor="test",
                api_key=SecretStr(api_key),
                keyring=self.keyring,
            )
            return org.id, connector.id

    def campaign(self, org: uuid.UUID, connector: uuid.UUID, recipients: list[str]) -> uuid.UUID:
        """Publish a bulk campaign (one task id) as ``pilot.send_batch`` tasks of 100 emails."""
        with transaction(self.factory) as session:
            task = Task(id=uuid.uuid4(), organization_id=org, name="campaign")
            session.add(task)
        for start in range(0, len(recipients), 100):
            payload = batch_payload(connector, recipients[start : start + 100], task_id=str(task.id))
            self.app.send_task(task_names.SEND_BATCH, kwargs=payload, queue=task_names.SENDS_QUEUE)
        return task.id

    def rows(self, **where: uuid.UUID) -> list[EmailMessage]:
        with self.factory() as session:
            query = select(EmailMessage).filter_by(**where)
            return list(session.scalars(query))


def settle(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def stack(template_database: str) -> Iterator[Stack]:
    name = f"pilot_test_rep_{uuid.uuid4().hex[:10]}"
    database_url = create_database(name, template=template_database)
    encryption_key = generate_key()
    try:
        with isolated_redis_db() as db:
            env = worker_env(
                database_url=database_url,
                redis_db=db,
                resend_base_url="http://unset",
                encryption_keys=encryption_key,
            )
            with (
                running_receiver(
                    database_url=database_url, broker_url=env["CELERY_BROKER_URL"], secret=SECRET_A
                ) as receiver,
                # A request every two seconds per key: a campaign leaves 100 emails at a time, as on
                # Resend, and the verdict on each hundred has two seconds to arrive, so how far a bad
                # list gets measures the guard, not how busy the machine is.
                running_sandbox(
                    rate_limit_per_second=REQUESTS_PER_SECOND,
                    webhook_url=receiver.webhook_url,
                    webhook_secret=SECRET_A,
                    duplicate_webhooks=0.2,
                    shuffle_webhooks=True,
                ) as sandbox,
            ):
                env["RESEND_BASE_URL"] = sandbox.url
                env["RESEND_REQUESTS_PER_SECOND"] = str(REQUESTS_PER_SECOND)
                settings = load_settings(
                    database_url=database_url,
                    redis_url=env["REDIS_URL"],
                    pilot_encryption_keys=encryption_key,
                )
                engine = make_engine(settings)
                app = make_celery(settings)
                queues = (*ALL_QUEUES, task_names.EVENTS_QUEUE)
                with running_worker(env, concurrency=2, queues=queues):
                    yield Stack(make_sessionmaker(engine), app, KeyRing.from_settings(settings))
                app.close()
                engine.dispose()
    finally:
        drop_database(name)


def bad_list(bad: Callable[[int], str | None]) -> list[str]:
    """The campaign's recipients: ``bad(i)`` where it names a test address, else a good one."""
    return [bad(i) or f"reader-{i:04d}-{uuid.uuid4().hex[:6]}@example.test" for i in range(CAMPAIGN)]


def hard_bounce_share(i: int) -> str | None:
    """15 % of the list: Resend's hard-bouncing test address, spread through it."""
    return f"bounced+{i}@resend.dev" if i % 20 in (2, 9, 16) else None


def complaint_share(i: int) -> str | None:
    """2 % of the list: Resend's complaining test address."""
    return f"complained+{i}@resend.dev" if i % 50 in (5,) else None


@pytest.mark.parametrize("bad", [hard_bounce_share, complaint_share], ids=["hard_bounces", "complaints"])
def test_a_bad_list_stops_its_campaign_early_and_nothing_else(
    stack: Stack, bad: Callable[[int], str | None]
) -> None:
    api_key = f"re_rep_{uuid.uuid4().hex}"
    org, connector = stack.organization(api_key)
    other_org, other_connector = stack.organization(api_key)  # the same Resend team

    task = stack.campaign(org, connector, bad_list(bad))
    other = [f"other-{i:03d}-{uuid.uuid4().hex[:6]}@example.test" for i in range(300)]
    stack.campaign(other_org, other_connector, other)

    settle(lambda: state_of(stack.factory, task) == "paused", "the campaign to be paused")
    campaign = lambda: stack.rows(task_id=task)  # noqa: E731
    settle(
        lambda: not any(row.status in ("queued", "sending") for row in campaign()), "the campaign to settle"
    )
    reset = f"reset-{uuid.uuid4().hex[:6]}@example.test"
    stack.app.send_task(
        task_names.SEND_EMAIL, kwargs=send_payload(connector, reset), queue=task_names.PRIORITY_SENDS_QUEUE
    )
    settle(
        lambda: all(row.resend_email_id for row in stack.rows(connector_id=other_connector)), "the other org"
    )
    settle(
        lambda: any(
            row.recipient == reset and row.resend_email_id for row in stack.rows(connector_id=connector)
        ),
        "the reset",
    )

    went_out = [row for row in campaign() if row.resend_email_id is not None]
    held = [row for row in campaign() if row.status == "deferred"]
    assert len(went_out) <= STOPPED_WITHIN
    assert len(went_out) + len(held) == CAMPAIGN
    assert all(row.last_error and row.last_error.startswith(HOLD_PREFIX) for row in held)
    assert Counter(row.priority for row in held) == {"bulk": len(held)}
    assert state_of(stack.factory, other_org) == "ok"
