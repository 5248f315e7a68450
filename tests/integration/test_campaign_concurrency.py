"""Parallel senders of one campaign (one ``tasks`` row) on the real PostgreSQL, with real commits.

Every sender is a thread with its own connection, as separate workers would be; each round they
start together behind a barrier, so their ledger inserts and task recounts overlap.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import fakeredis
import pytest
from sqlalchemy import Engine, func, select

from shared.db import make_engine, make_sessionmaker
from shared.models import EmailMessage, Task
from shared.rate_limit import RateLimiter
from shared.sending import pipeline as sending
from shared.sending.context import SendContext
from shared.settings import Settings, load_settings
from tests.fake_resend import BASE_URL, FakeResend
from tests.send_helpers import add_connector, add_task, batch_payload

pytestmark = pytest.mark.integration

SENDERS = 8
ROUNDS = 5
RECIPIENTS_PER_BATCH = 3
#: Longest a sender waits for the others at a round's start (a crashed sender must not hang the test).
BARRIER_TIMEOUT_S = 60.0


@pytest.fixture
def settings(fresh_database_url: str) -> Settings:
    return load_settings(
        database_url=fresh_database_url, resend_api_key="re_test_parallel", resend_base_url=BASE_URL
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings, pool_size=SENDERS + 2)
    yield engine
    engine.dispose()


@pytest.fixture
def limiter(redis_prefix: str) -> RateLimiter:
    # Each bucket check is one second after the last: the API key's request bucket never stands in
    # the way, so every batch is sent in its first run and the senders stay in step.
    ticks = itertools.count(1)
    return RateLimiter(fakeredis.FakeRedis(), key_prefix=redis_prefix, clock_ms=lambda: next(ticks) * 1000)


def _failure(exc: Exception) -> str:
    cause = getattr(exc, "orig", None) or exc
    return type(cause).__name__


def test_send_batch_from_eight_parallel_senders_into_one_campaign_never_deadlocks(
    settings: Settings, engine: Engine, limiter: RateLimiter
) -> None:
    factory = make_sessionmaker(engine)
    organization_id, connector_id = add_connector(factory, per_hour=100_000, per_day=1_000_000)
    task_id = add_task(factory, organization_id)
    barrier = threading.Barrier(SENDERS, timeout=BARRIER_TIMEOUT_S)

    def sender(number: int) -> list[str]:
        ctx = SendContext(settings=settings, engine=engine, limiter=limiter, http=FakeResend().client())
        failures = []
        try:
            for round_number in range(ROUNDS):
                recipients = [
                    f"r{round_number}-s{number}-{i}@example.test" for i in range(RECIPIENTS_PER_BATCH)
                ]
                payload = batch_payload(connector_id, recipients, task_id=str(task_id))
                barrier.wait()
                try:
                    sending.send_batch(ctx, payload, task_ref=f"round-{round_number}-sender-{number}")
                except Exception as exc:  # what a Celery worker would see as the task's failure
                    failures.append(f"round {round_number}, sender {number}: {_failure(exc)}")
        finally:
            ctx.release()
            ctx.http.close()
        return failures

    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        failures = [failure for result in pool.map(sender, range(SENDERS)) for failure in result]

    expected = SENDERS * ROUNDS * RECIPIENTS_PER_BATCH
    assert failures == []
    with factory() as session:
        statuses = dict(
            session.execute(
                select(EmailMessage.status, func.count())
                .where(EmailMessage.task_id == task_id)
                .group_by(EmailMessage.status)
            ).all()
        )
        task = session.get_one(Task, task_id)
    assert statuses == {"sent": expected}
    assert task.execution_result["sends"] == {"sent": expected, "total": expected}
