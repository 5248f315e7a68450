"""End to end at Resend's request rate: a real worker, PostgreSQL, Redis, and the sandbox limited to 2
requests a second. Many single sends leave together, up to 100 to a request."""

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
from shared.settings import load_settings
from tests.conftest import create_database, drop_database
from tests.sandbox_process import SandboxHandle, running_sandbox
from tests.send_helpers import add_connector, send_payload
from tests.worker_process import isolated_redis_db, running_worker, worker_env
from worker.celery_app import make_celery

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

REQUESTS_PER_SECOND = 2
SENDS = 1000
#: 1,000 emails at 100 a request need 10; a few more when the first ones leave before the rest arrive.
MAX_REQUESTS = 15
SETTLE_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    with running_sandbox(rate_limit_per_second=REQUESTS_PER_SECOND) as handle:
        yield handle


def test_e2e_a_thousand_single_sends_at_two_requests_a_second_leave_in_at_most_15_requests(
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
            app.close()
            engine.dispose()
        stats = sandbox.stats()["counts"]
        emails = sandbox.emails()
    finally:
        drop_database(name)

    deliveries = Counter(address for email in emails for address in email["to"])
    assert statuses == Counter({"sent": SENDS})
    assert deliveries == Counter({address: 1 for address in to})
    assert stats["requests"] <= MAX_REQUESTS, stats
    assert stats.get("rate_limited", 0) == 0, stats
