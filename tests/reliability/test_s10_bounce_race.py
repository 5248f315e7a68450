"""Scenario 10: a send and a hard bounce for the same address, racing.

Each race: an address already has a sent email in the ledger; a new send to it is published and,
a random moment later, Resend's hard bounce of the old email arrives at the receiver (the worker
turns it into a suppression). Whatever the interleaving, no email may reach the sandbox after the
suppression has committed. The commit time comes from PostgreSQL (``track_commit_timestamp`` on
the suite's own server); the sandbox notes when it accepted each email; both on this machine's clock.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import text

from shared import task_names
from tests.receiver_process import running_receiver
from tests.reliability.harness import Stack, settle, size, stack
from tests.reliability.servers import PostgresServer, RedisServer
from tests.reliability.webhooks import SECRET, SentEmail, event_counts, hard_bounce_request, seed_sent_emails
from tests.sandbox_process import running_sandbox
from tests.send_helpers import add_connector
from tests.worker_process import ALL_QUEUES, running_worker

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(size(180, 600))]

RACES = size(20, 100)
#: The sandbox holds each send this long before accepting it: the window a suppression can land in.
LATENCY_S = 0.3
#: The bounce arrives up to this long after the send is published.
MAX_OFFSET_S = 0.6


def suppression_commits(s: Stack, organization_id: uuid.UUID) -> dict[str, float]:
    """Unix time each suppression of the organization committed, by address."""
    with s.factory() as session:
        rows = session.execute(
            text(
                "SELECT email, extract(epoch FROM pg_xact_commit_timestamp(xmin)) FROM suppression_list"
                " WHERE organization_id = :org"
            ),
            {"org": organization_id},
        ).all()
    return {email: float(at) for email, at in rows}


def test_send_racing_a_hard_bounce_never_delivers_after_the_suppression_commits(
    postgres_server: PostgresServer, redis_server: RedisServer, figures: Callable[[str], None]
) -> None:
    started = time.monotonic()
    database_url = postgres_server.create_database(f"s10_{uuid.uuid4().hex[:8]}")
    rng = random.Random(10)
    with (
        running_sandbox(rate_limit_per_second=0, latency=LATENCY_S) as sandbox,
        stack(database_url, redis_server, sandbox) as s,
        running_receiver(database_url=database_url, broker_url=redis_server.url, secret=SECRET) as receiver,
        running_worker(s.env, concurrency=4, pool="prefork", queues=(*ALL_QUEUES, task_names.EVENTS_QUEUE)),
    ):
        organization_id, connector_id = add_connector(s.factory)
        emails = seed_sent_emails(s.factory, RACES, connector=(organization_id, connector_id))

        def race(email: SentEmail) -> int:
            s.publish(connector_id, email.recipient, subject="Again")
            time.sleep(rng.uniform(0, MAX_OFFSET_S))
            request = hard_bounce_request(email)
            return httpx.post(receiver.webhook_url, content=request.body, headers=request.headers).status_code

        with ThreadPoolExecutor(4) as pool:
            answers = Counter(pool.map(race, emails))
        settle(
            lambda: (
                event_counts(s.factory).processed == RACES
                and sum(s.statuses(connector_id).values()) == 2 * RACES
                and not {"queued", "sending", "deferred"} & set(s.statuses(connector_id))
            ),
            "every bounce applied and every new send settled",
            timeout=120,
            state=lambda: (event_counts(s.factory), s.statuses(connector_id)),
        )
        commits = suppression_commits(s, organization_id)
        accepted = {email["to"][0].lower(): email["created_at"] for email in sandbox.emails()}
        statuses = s.statuses(connector_id)

    late = {
        address: accepted[address] - commits[address]
        for address in commits
        if address in accepted and accepted[address] > commits[address]
    }
    delivered = sum(1 for email in emails if email.recipient.lower() in accepted)
    assert answers == {200: RACES}
    assert len(commits) == RACES
    assert not late, f"delivered after the suppression committed (s later): {late}"
    figures(
        f"scenario 10 send vs hard bounce: {RACES} races, {delivered} delivered before the suppression "
        f"committed, {statuses['suppressed']} skipped as suppressed, {len(late)} delivered after it; "
        f"{time.monotonic() - started:.0f} s"
    )
