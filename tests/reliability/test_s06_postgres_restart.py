"""Scenario 6: PostgreSQL restarted while sends and a stream of webhook events are in flight.

A PostgreSQL server of the suite's own is stopped (clients disconnected), kept down a moment and
started again. Sends (published with ``send_task``: the worker writes their rows) must each be
delivered once; every webhook event must be stored once and applied once; the receiver answers
503 while it cannot store (Resend retries those; the sender here retries like it).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable

import pytest

from shared import task_names
from tests.receiver_process import running_receiver
from tests.reliability.harness import recipients, running_beat, settle, size, stack
from tests.reliability.servers import PostgresServer, RedisServer
from tests.reliability.webhooks import (
    SECRET,
    RetryingSender,
    event_counts,
    event_request,
    seed_sent_emails,
    sending_in_background,
)
from tests.sandbox_process import running_sandbox
from tests.worker_process import ALL_QUEUES, running_worker

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(size(240, 900))]

SENDS = size(30, 100)
EVENTS = size(200, 2000)
EVENTS_PER_SECOND = size(50, 100)
DOWN_S = size(2.0, 5.0)


def test_postgres_restart_during_sends_and_webhooks_loses_and_repeats_nothing(
    postgres_server: PostgresServer, redis_server: RedisServer, figures: Callable[[str], None]
) -> None:
    started = time.monotonic()
    database_url = postgres_server.create_database(f"s6_{uuid.uuid4().hex[:8]}")
    with (
        running_sandbox(rate_limit_per_second=0, latency=0.1) as sandbox,
        stack(database_url, redis_server, sandbox) as s,
        running_receiver(database_url=database_url, broker_url=redis_server.url, secret=SECRET) as receiver,
        running_worker(
            s.env, concurrency=2, pool="prefork", queues=(*ALL_QUEUES, task_names.EVENTS_QUEUE)
        ) as worker,
        running_beat(s, sweep_after=15, reconcile_after=15, events_after=15) as beat,
    ):
        connector_id = s.connector()
        emails = seed_sent_emails(s.factory, EVENTS)
        requests = [event_request(email) for email in emails]
        to = recipients("pg", SENDS)
        sender = RetryingSender(receiver.webhook_url)
        with sending_in_background(sender, requests, per_second=EVENTS_PER_SECOND):
            for address in to:
                s.publish(connector_id, address)
            time.sleep(1.0)  # sends and events under way
            postgres_server.restart(down_for=DOWN_S)
        settle(
            lambda: s.statuses(connector_id)["sent"] == SENDS and event_counts(s.factory).processed == EVENTS,
            "every send sent and every event processed",
            timeout=size(120, 300),
            every=0.5,
            state=lambda: (
                s.statuses(connector_id),
                event_counts(s.factory),
                sender.answers,
                worker.log()[-3000:],
            ),
        )
        statuses = s.statuses(connector_id)
        deliveries = s.deliveries(to)
        counts = event_counts(s.factory)

    refused = {status: n for status, n in sender.answers.items() if not 200 <= status < 300}
    assert statuses == Counter({"sent": SENDS})
    assert deliveries == Counter({address: 1 for address in to})
    assert counts == type(counts)(stored=EVENTS, processed=EVENTS, failed=0, metrics=EVENTS)
    assert set(refused) <= {503}, f"answers other than 2xx and 503: {refused}"
    figures(
        f"scenario 6 postgres restart (down {DOWN_S:.0f} s): {SENDS} sends, {sum(deliveries.values())} "
        f"delivered, {sum(n - 1 for n in deliveries.values())} duplicates; {EVENTS} events, {counts.stored} "
        f"stored, {counts.metrics} applied once each, {refused.get(503, 0)} answered 503 (then retried), "
        f"{sum(refused.values()) - refused.get(503, 0)} other refusals; beat re-enqueued "
        f"{beat.published['swept']} rows, {beat.published['events']} events; "
        f"{time.monotonic() - started:.0f} s"
    )
