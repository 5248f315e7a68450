"""The worker's /metrics: a real prefork worker (2 children) sends through the sandbox; counters are
the sums of both children's files, read from the main process."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from shared import task_names
from shared.db import make_engine, make_sessionmaker
from shared.models import EmailMessage
from shared.settings import load_settings
from tests.conftest import create_database, drop_database
from tests.sandbox_process import free_port, running_sandbox
from tests.send_helpers import add_connector, send_payload
from tests.worker_process import isolated_redis_db, running_worker, worker_env
from worker.celery_app import make_celery

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SETTLE_TIMEOUT_S = 60.0
EMAILS = 6


def settle(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_worker_metrics_sum_every_child_and_are_served_by_the_main_process(template_database: str) -> None:
    name = f"pilot_test_metrics_{uuid.uuid4().hex[:10]}"
    database_url = create_database(name, template=template_database)
    try:
        with running_sandbox(rate_limit_per_second=0) as sandbox, isolated_redis_db() as db:
            port = free_port()  # after the sandbox took its own
            env = worker_env(
                database_url=database_url,
                redis_db=db,
                resend_base_url=sandbox.url,
                PILOT_WORKER_METRICS_PORT=str(port),
            )
            settings = load_settings(database_url=database_url, redis_url=env["REDIS_URL"])
            engine = make_engine(settings)
            factory = make_sessionmaker(engine)
            app = make_celery(settings)
            _, connector_id = add_connector(factory)
            with running_worker(env, concurrency=2, pool="prefork") as worker:
                # Given a worker with two children, when six single sends go through it
                for i in range(EMAILS):
                    payload = send_payload(connector_id, f"m{i}@example.test")
                    app.send_task(task_names.SEND_EMAIL, kwargs=payload)

                def all_sent() -> bool:
                    with factory() as session:
                        query = select(func.count()).where(
                            EmailMessage.connector_id == connector_id, EmailMessage.status == "sent"
                        )
                        return session.scalar(query) == EMAILS

                settle(all_sent, "six sends")

                def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
                    return samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)

                # the task's duration is observed just after its row is committed
                settle(
                    lambda: (
                        (
                            scraped().get(
                                ("pilot_task_duration_seconds_count", (("task", task_names.SEND_EMAIL),))
                            )
                            or 0
                        )
                        >= EMAILS
                    ),  # a task retried under load adds a sample per run
                    "task durations",
                )
                found = scraped()
                assert len(worker.child_pids()) == 2
            app.close()
            engine.dispose()
    finally:
        drop_database(name)

    # Then the main process serves the sums over both children
    assert found[("pilot_sends_total", (("result", "sent"),))] == EMAILS
    requests = found[("pilot_resend_responses_total", (("error_name", ""), ("status", "200")))]
    assert 1 <= requests <= EMAILS  # rows waiting together leave in one request
    assert found[("pilot_emails_per_request_count", ())] == requests
    assert found[("pilot_emails_per_request_sum", ())] == EMAILS
    windows = {
        labels: value
        for (metric, labels), value in found.items()
        if metric == "pilot_bucket_tokens_remaining" and ("connector_id", str(connector_id)) in labels
    }
    assert {dict(labels)["window"] for labels in windows} == {"hour", "day"}
    assert all(0 <= value <= 10000 for value in windows.values())
