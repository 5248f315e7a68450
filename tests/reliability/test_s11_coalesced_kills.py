"""Scenario 11: SIGKILL pool children and whole workers while coalesced units are in flight.

Single-recipient sends (each its own ``pilot.send_email`` task, rows written first through the
outbox) arrive faster than the API key's request rate (2 a second), so their rows leave together,
many to a request. Kills land while a unit is in flight
(rows ``sending``). Then: no email is lost, none is delivered twice (the sandbox counts each
acceptance), and every email was accepted under the idempotency key of its row's unit: a unit whose
outcome was unknown went again only as itself. A new worker is started after each whole-worker kill.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import select

from shared.models import EmailMessage
from tests.reliability.harness import Stack, recipients, running_beat, settle, size, stack
from tests.reliability.servers import RedisServer
from tests.sandbox_process import running_sandbox
from tests.worker_process import WorkerHandle, running_worker

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(size(300, 1800))]

ROUNDS = size(4, 20)
#: A whole worker is killed every this many rounds (the other rounds kill a pool child).
WHOLE_WORKER_EVERY = 4
#: Emails published whenever fewer than this wait (until the last kill): units stay full and busy.
TOP_UP = 60
#: The API key's request rate: the sends of many tasks leave in one request.
REQUESTS_PER_SECOND = 2.0
#: Each request spends most of its time at the sandbox, so a kill lands while a unit is in flight.
LATENCY_S = 0.4
RECONCILE_AFTER_S = 5.0
SWEEP_AFTER_S = 10.0


class Feed:
    """Adds :data:`TOP_UP` single-recipient sends whenever fewer rows wait.

    Through the transactional outbox (rows first, one task per send after the commit): a task held
    by a worker killed whole comes back only after the broker's visibility timeout, its rows at once.
    """

    def __init__(self, s: Stack, connector_id: uuid.UUID) -> None:
        self.s, self.connector_id = s, connector_id
        self.to: list[str] = []

    def top_up(self) -> None:
        waiting = self.s.statuses(self.connector_id)
        if waiting["queued"] + waiting["sending"] < TOP_UP:
            more = recipients("unit", TOP_UP)
            self.s.outbox(self.connector_id, more)
            self.to += more


def unit_in_flight(s: Stack, feed: Feed) -> set[uuid.UUID]:
    """The rows of units being sent right now (waits until there is one of several rows)."""
    found: set[uuid.UUID] = set()

    def some() -> bool:
        feed.top_up()
        with s.factory() as session:
            query = select(EmailMessage.id, EmailMessage.attempt_key).where(
                EmailMessage.connector_id == feed.connector_id,
                EmailMessage.status == "sending",
                EmailMessage.next_attempt_at.is_(None),
            )
            rows = session.execute(query).all()
        units = Counter(unit for _, unit in rows)
        if any(count > 1 for count in units.values()):
            found.update(row_id for row_id, _ in rows)
            return True
        return False

    settle(some, "a unit of several rows in flight", timeout=60, every=0.02)
    return found


def all_sent(s: Stack, ids: set[uuid.UUID]) -> bool:
    with s.factory() as session:
        statuses = session.scalars(select(EmailMessage.status).where(EmailMessage.id.in_(ids))).all()
    return all(status == "sent" for status in statuses)


def wait_sent(s: Stack, feed: Feed, ids: set[uuid.UUID], what: str, worker: WorkerHandle) -> None:
    settle(
        lambda: all_sent(s, ids),
        what,
        timeout=120,
        state=lambda: (s.statuses(feed.connector_id), s.broker_backlog(), worker.log()[-3000:]),
    )


def test_kills_while_coalesced_units_are_in_flight_lose_and_duplicate_nothing(
    fresh_database_url: str, redis_server: RedisServer, figures: Callable[[str], None]
) -> None:
    started = time.monotonic()
    recoveries: list[float] = []
    whole_kills = 0
    rate = {"RESEND_REQUESTS_PER_SECOND": str(REQUESTS_PER_SECOND)}
    with (
        running_sandbox(rate_limit_per_second=0, latency=LATENCY_S) as sandbox,
        stack(fresh_database_url, redis_server, sandbox, **rate) as s,
        running_beat(s, sweep_after=SWEEP_AFTER_S, reconcile_after=RECONCILE_AFTER_S),
    ):
        feed = Feed(s, s.connector())
        orphans: tuple[set[uuid.UUID], float] | None = None
        round_number = 0
        while True:
            with running_worker(s.env, concurrency=2, pool="prefork") as worker:
                if orphans is not None:  # a dead worker's units come back through the next dispatch
                    wait_sent(s, feed, orphans[0], "the dead worker's units", worker)
                    recoveries.append(time.monotonic() - orphans[1])
                    orphans = None
                while round_number < ROUNDS:
                    settle(lambda: len(worker.child_pids()) == 2, "a full pool", timeout=60)
                    rows = unit_in_flight(s, feed)
                    round_number += 1
                    killed_at = time.monotonic()
                    if round_number % WHOLE_WORKER_EVERY == 0:
                        os.killpg(worker.pid, signal.SIGKILL)
                        whole_kills += 1
                        orphans = (rows, killed_at)
                        break
                    os.kill(worker.child_pids()[0], signal.SIGKILL)
                    wait_sent(s, feed, rows, "the killed unit to be sent", worker)
                    recoveries.append(time.monotonic() - killed_at)
                if orphans is None:
                    settle(
                        lambda: s.statuses(feed.connector_id)["sent"] == len(feed.to),
                        "every email sent",
                        timeout=300,
                        state=lambda: s.statuses(feed.connector_id),
                    )
                    break
        statuses = s.statuses(feed.connector_id)
        emails = sandbox.emails()
        with s.factory() as session:
            ledger = session.execute(
                select(EmailMessage.resend_email_id, EmailMessage.attempt_key, EmailMessage.recipient).where(
                    EmailMessage.connector_id == feed.connector_id
                )
            ).all()

    deliveries = Counter(to for email in emails for to in email["to"])
    lost = [address for address in feed.to if deliveries[address] == 0]
    duplicated = {address: n for address, n in deliveries.items() if n > 1}
    accepted_under = {email["id"]: email["idempotency_key"] for email in emails}
    other_key = [recipient for email_id, unit, recipient in ledger if accepted_under.get(email_id) != unit]
    units = Counter(unit for _, unit, _ in ledger)
    assert statuses == Counter({"sent": len(feed.to)})
    assert not lost and not duplicated and not other_key
    figures(
        f"scenario 11 kills with coalesced units in flight: {len(feed.to)} single sends at "
        f"{REQUESTS_PER_SECOND:.0f} requests/s in {len(units)} units (mean {len(ledger) / len(units):.1f} "
        f"emails each), {ROUNDS - whole_kills} child kills (recovery median "
        f"{statistics.median(recoveries) if recoveries else 0:.1f} s), {whole_kills} whole-worker kills; "
        f"{sum(deliveries.values())} delivered, {len(lost)} lost, {len(duplicated)} duplicates, "
        f"{len(other_key)} accepted under another key; {time.monotonic() - started:.0f} s"
    )
