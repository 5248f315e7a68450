"""Scenario 1: SIGKILL a pool child mid-send, and the whole worker, again and again.

Sends go through the transactional outbox (rows first), so a message that dies with a whole worker
(held unacked in Redis until the visibility timeout) is found again in PostgreSQL by the reconcile
(rows left ``sending``) or the sweep (rows left ``queued``). A new worker is started right after each
whole-worker kill, as a supervisor would. Recovery time: from the kill until every row that was
mid-send at that moment is ``sent``.
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
from sqlalchemy import select, text

from shared.models import EmailMessage
from tests.reliability.harness import Stack, recipients, running_beat, settle, size, stack
from tests.reliability.servers import RedisServer
from tests.sandbox_process import running_sandbox
from tests.worker_process import WorkerHandle, running_worker

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(size(240, 1500))]

CHILD_KILLS = size(3, 20)
WORKER_KILLS = size(1, 10)
#: Emails added whenever fewer than this wait, until the last kill (so every kill lands mid-send).
TOP_UP = 20
#: Each send spends most of its time inside the HTTP call, so a kill lands mid-send.
LATENCY_S = 0.3
#: The compressed reconcile threshold (production: 10 minutes, checked every 5).
RECONCILE_AFTER_S = 5.0
#: The compressed sweep threshold (production: 5 minutes): queued rows the dead worker had taken.
SWEEP_AFTER_S = 15.0


class Feed:
    """Keeps work queued while kills remain: adds :data:`TOP_UP` emails when fewer are waiting."""

    def __init__(self, s: Stack, connector_id: uuid.UUID) -> None:
        self.s, self.connector_id = s, connector_id
        self.to: list[str] = []

    def top_up(self) -> None:
        if self.s.statuses(self.connector_id)["queued"] < TOP_UP:
            more = recipients("kill", TOP_UP)
            self.s.outbox(self.connector_id, more)
            self.to += more


def in_flight(s: Stack, connector_id: uuid.UUID, feed: Feed) -> set[uuid.UUID]:
    """Rows being sent right now (waits until there is one)."""
    found: set[uuid.UUID] = set()

    def some() -> bool:
        feed.top_up()
        with s.factory() as session:
            query = select(EmailMessage.id).where(
                EmailMessage.connector_id == connector_id, EmailMessage.status == "sending"
            )
            found.update(session.scalars(query))
        return bool(found)

    settle(some, "a send in progress", timeout=60, every=0.02)
    return found


def rows_state(s: Stack, ids: set[uuid.UUID]) -> list[tuple[str, int, str | None]]:
    with s.factory() as session:
        query = select(EmailMessage.status, EmailMessage.attempts, EmailMessage.last_error)
        return [tuple(row) for row in session.execute(query.where(EmailMessage.id.in_(ids)))]  # type: ignore[misc]


def advisory_locks(s: Stack) -> list[tuple[object, ...]]:
    """Who holds which advisory lock (for the failure message)."""
    with s.factory() as session:
        query = text(
            "SELECT l.pid, l.classid, l.objid, l.granted, a.state, a.wait_event, left(a.query, 80)"
            " FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory'"
        )
        return [tuple(row) for row in session.execute(query)]


def all_sent(s: Stack, ids: set[uuid.UUID]) -> bool:
    return all(status == "sent" for status, _, _ in rows_state(s, ids))


def kill_children(s: Stack, feed: Feed, worker: WorkerHandle, kills: int) -> list[float]:
    """SIGKILL a busy pool child ``kills`` times; the recovery time of each."""
    recoveries = []
    for _ in range(kills):
        settle(lambda: len(worker.child_pids()) == 2, "a full pool", timeout=60)
        rows = in_flight(s, feed.connector_id, feed)
        os.kill(worker.child_pids()[0], signal.SIGKILL)
        killed_at = time.monotonic()
        wait_sent(s, rows, "the killed send to be redone", worker)
        recoveries.append(time.monotonic() - killed_at)
    return recoveries


def wait_sent(s: Stack, rows: set[uuid.UUID], what: str, worker: WorkerHandle) -> None:
    settle(
        lambda: all_sent(s, rows),
        what,
        timeout=120,
        state=lambda: (rows_state(s, rows), s.broker_backlog(), advisory_locks(s), worker.log()[-3000:]),
    )


def test_sigkill_children_and_whole_workers_mid_send_lose_and_duplicate_nothing(
    fresh_database_url: str, redis_server: RedisServer, figures: Callable[[str], None]
) -> None:
    started = time.monotonic()
    child_recoveries: list[float] = []
    worker_recoveries: list[float] = []
    with (
        running_sandbox(rate_limit_per_second=0, latency=LATENCY_S) as sandbox,
        stack(fresh_database_url, redis_server, sandbox) as s,
        running_beat(s, sweep_after=SWEEP_AFTER_S, reconcile_after=RECONCILE_AFTER_S) as beat,
    ):
        feed = Feed(s, s.connector())
        # One worker lifetime per round; every round but the last ends with a whole-worker kill.
        per_round = [CHILD_KILLS // (WORKER_KILLS + 1)] * (WORKER_KILLS + 1)
        per_round[-1] += CHILD_KILLS - sum(per_round)
        orphans: tuple[set[uuid.UUID], float] | None = None
        for round_number, child_kills in enumerate(per_round):
            with running_worker(s.env, concurrency=2, pool="prefork") as worker:
                if orphans is not None:  # the dead worker's mid-send rows come back through reconcile
                    wait_sent(s, orphans[0], "the dead worker's sends", worker)
                    worker_recoveries.append(time.monotonic() - orphans[1])
                child_recoveries += kill_children(s, feed, worker, child_kills)
                if round_number < WORKER_KILLS:
                    rows = in_flight(s, feed.connector_id, feed)
                    os.killpg(worker.pid, signal.SIGKILL)
                    orphans = (rows, time.monotonic())
                else:
                    total = len(feed.to)
                    settle(
                        lambda: s.statuses(feed.connector_id)["sent"] == len(feed.to),
                        "every email sent",
                        timeout=300,
                        state=lambda: s.statuses(feed.connector_id),
                    )
        statuses = s.statuses(feed.connector_id)
        deliveries = s.deliveries(feed.to)

    assert len(child_recoveries) == CHILD_KILLS and len(worker_recoveries) == WORKER_KILLS
    assert statuses == Counter({"sent": total})
    lost = [address for address in feed.to if deliveries[address] == 0]
    duplicated = {address: n for address, n in deliveries.items() if n > 1}
    assert not lost and not duplicated
    child, whole = child_recoveries, worker_recoveries
    figures(
        f"scenario 1 sigkill: {total} sends, {sum(deliveries.values())} delivered, {len(lost)} lost, "
        f"{len(duplicated)} duplicates; {CHILD_KILLS} child kills (recovery median "
        f"{statistics.median(child):.1f} s, max {max(child):.1f} s); {WORKER_KILLS} whole-worker kills "
        f"(recovery median {statistics.median(whole):.1f} s, max {max(whole):.1f} s, restart included, "
        f"reconcile after {RECONCILE_AFTER_S:.0f} s instead of 10 min; {beat.published['reconciled']} rows "
        f"reconciled, {beat.published['swept']} swept); {time.monotonic() - started:.0f} s"
    )
