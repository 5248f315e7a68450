"""End to end at Resend's request rate: a real worker, PostgreSQL, Redis, and the sandbox limited to 2
requests a second. Many single sends leave together, up to 100 to a request: each request takes every
row waiting for the API key when it leaves. How many requests that makes depends on how fast the
worker queues the sends (a loaded machine queues them slower, in more and smaller requests), so the
test measures what each request carried against what was waiting, not a request count."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from shared import task_names
from shared.db import make_engine, make_sessionmaker
from shared.models import EmailMessage
from shared.resend_schemas import MAX_BATCH_SIZE
from shared.settings import load_settings
from tests.conftest import create_database, drop_database
from tests.request_trace import left_behind, requests_of
from tests.sandbox_process import SandboxHandle, running_sandbox
from tests.send_helpers import add_connector, send_payload
from tests.worker_process import isolated_redis_db, running_worker, worker_env
from worker.celery_app import make_celery

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.serial]

REQUESTS_PER_SECOND = 2
SENDS = 1000
#: Between a dispatcher's claim and the sandbox accepting its request (some milliseconds; more on a
#: loaded machine) newly queued rows cannot join it. A row queued this long before a request with room
#: left must have gone in it. One request interval at 2 a second.
CLAIM_TO_ACCEPT_S = 0.5
SETTLE_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    with running_sandbox(rate_limit_per_second=REQUESTS_PER_SECOND) as handle:
        yield handle


def test_e2e_a_thousand_single_sends_at_two_requests_a_second_each_request_takes_every_waiting_row(
    template_database: str, sandbox: SandboxHandle
) -> None:
    name = f"pilot_test_coalesce_{uuid.uuid4().hex[:10]}"
    database_url = create_database(name, template=template_database)
    try:
        with isolated_redis_db() as db:
            env = worker_env(
                database_url=database_url,
                redis_db=db,
                resend_base_url=sandbox.url,
                requests_per_second=REQUESTS_PER_SECOND,
            )
            settings = load_settings(database_url=database_url, redis_url=env["REDIS_URL"])
            engine = make_engine(settings)
            factory = make_sessionmaker(engine)
            app = make_celery(settings)
            _, connector_id = add_connector(factory, per_hour=100_000, per_day=1_000_000)
            to = [f"c{i:04d}@example.test" for i in range(SENDS)]
            query = select(EmailMessage.status, func.count()).where(EmailMessage.connector_id == connector_id)
            with running_worker(env, concurrency=2, pool="prefork"):
                for address in to:
                    app.send_task(task_names.SEND_EMAIL, kwargs=send_payload(connector_id, address))
                deadline = time.monotonic() + SETTLE_TIMEOUT_S
                while True:
                    with factory() as session:
                        statuses = Counter(dict(session.execute(query.group_by(EmailMessage.status)).all()))
                    if statuses["sent"] == SENDS or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
            with factory() as session:
                queued = session.execute(
                    select(EmailMessage.recipient, EmailMessage.created_at).where(
                        EmailMessage.connector_id == connector_id
                    )
                ).all()
            app.close()
            engine.dispose()
        stats = sandbox.stats()["counts"]
        emails = sandbox.emails()
    finally:
        drop_database(name)

    deliveries = Counter(address for email in emails for address in email["to"])
    queued_at = {recipient: created_at.timestamp() for recipient, created_at in queued}
    requests = requests_of(emails)
    assert statuses == Counter({"sent": SENDS})
    assert deliveries == Counter({address: 1 for address in to})
    stragglers = left_behind(requests, queued_at, full=MAX_BATCH_SIZE, lag=CLAIM_TO_ACCEPT_S)
    assert stragglers == [], ([len(request.recipients) for request in requests], stragglers[:20])
    assert stats.get("rate_limited", 0) == 0, stats
