"""A task's figures, kept incrementally, always equal a recount from scratch (real PostgreSQL, real commits).

Random streams (seeded, so a failure names its seed) mix webhook events of every kind, repeats of the
same event, replays of processed ones, batches in any order, unsubscribes, status changes by any
statement, new rows and rolled-back transactions; two workers race batches of two campaigns.
"""

from __future__ import annotations

import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from shared.counters.recount import Recount, recount_task
from shared.db import transaction
from shared.models import EmailMessage, Task
from shared.unsubscribe.actions import UnsubscribeSource, unsubscribe
from shared.unsubscribe.tokens import UnsubscribeToken
from shared.unsubscribe.topics import Scope
from tests.integration.conftest import Pilot
from tests.webhook_factories import T0, Ledger, make_message, make_organization, resend_payload, store_event
from worker.events.processing import process_event, process_events

pytestmark = pytest.mark.integration

Factory = sessionmaker[Session]

SEEDS = range(12)
STEPS = 120
#: Webhook event kinds, with what a bounce needs; "received" is stored but counts nothing.
EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("sent", {}),
    ("delivered", {}),
    ("delivery_delayed", {}),
    ("opened", {}),
    ("clicked", {"click": {"link": "https://example.test/a"}}),
    ("bounced", {"bounce": {"type": "Permanent", "subType": "General", "message": "gone"}}),
    ("bounced", {"bounce": {"type": "Transient", "subType": "MailboxFull", "message": "full"}}),
    ("complained", {}),
    ("failed", {"failed": {"reason": "reached_daily_quota"}}),
    ("suppressed", {}),
    ("received", {}),
]
STATUSES = ("queued", "deferred", "sending", "sent", "delivered", "bounced", "failed", "cancelled")
TOPICS = (None, "news", "offers")


def campaign(factory: Factory, size: int) -> tuple[uuid.UUID, list[Ledger]]:
    """A task with ``size`` sent ledger rows, committed."""
    with transaction(factory) as session:
        organization_id, connector_id = make_organization(session)
        rows = [make_message(session, organization_id, connector_id, recipient="r0@example.test")]
        task_id = rows[0].task_id
        rows += [
            make_message(
                session, organization_id, connector_id, task_id=task_id, recipient=f"r{n}@example.test"
            )
            for n in range(1, size)
        ]
    return task_id, rows


def figures(factory: Factory, task_id: uuid.UUID) -> dict[str, Any]:
    with factory() as session:
        stored = session.get_one(Task, task_id).execution_result
    return {key: stored[key] for key in ("sends", "delivery") if key in stored}


def recount(factory: Factory, task_id: uuid.UUID) -> Recount:
    with transaction(factory) as session:
        result = recount_task(session, task_id)
    assert result is not None
    return result


class Stream:
    """One random history of a campaign, applied as it is drawn."""

    def __init__(self, factory: Factory, seed: int) -> None:
        self.factory = factory
        self.rng = random.Random(seed)
        self.task_id, self.rows = campaign(factory, 8)
        self.topics = {row.message_id: self.rng.choice(TOPICS) for row in self.rows}
        self.payloads: list[dict[str, Any]] = []
        self.pending: list[uuid.UUID] = []
        self.processed: list[uuid.UUID] = []

    def step(self) -> None:
        roll = self.rng.random()
        if roll < 0.45:
            self.store_event()
        elif roll < 0.60:
            self.process_batch()
        elif roll < 0.66:
            self.process_one()
        elif roll < 0.76:
            self.change_status()
        elif roll < 0.80:
            self.add_row()
        elif roll < 0.88:
            self.unsubscribe()
        else:
            self.roll_back()

    def store_event(self) -> None:
        if self.payloads and self.rng.random() < 0.2:
            payload = self.rng.choice(self.payloads)  # the same event again, under a new svix id
        else:
            row = self.rng.choice(self.rows)
            kind, extra = self.rng.choice(EVENTS)
            moment = T0 + timedelta(seconds=self.rng.randrange(3600))
            payload = resend_payload(
                kind, row.resend_email_id, created_at=moment, recipient=row.recipient, **extra
            )
            self.payloads.append(payload)
        with transaction(self.factory) as session:
            self.pending.append(store_event(session, payload))

    def process_batch(self) -> None:
        chosen = self.rng.sample(self.pending, self.rng.randint(0, len(self.pending)))
        replayed = self.rng.sample(self.processed, min(len(self.processed), self.rng.randint(0, 2)))
        batch = chosen + replayed
        self.rng.shuffle(batch)
        process_events(self.factory, batch, now=T0 + timedelta(minutes=1))
        self.done(chosen)

    def process_one(self) -> None:
        if self.pending:
            event_id = self.rng.choice(self.pending)
            process_event(self.factory, event_id, now=T0 + timedelta(minutes=1))
            self.done([event_id])

    def done(self, event_ids: list[uuid.UUID]) -> None:
        self.pending = [event_id for event_id in self.pending if event_id not in event_ids]
        self.processed += event_ids

    def change_status(self) -> None:
        chosen = self.rng.sample(self.rows, self.rng.randint(1, 3))
        with transaction(self.factory) as session:
            session.execute(
                text("UPDATE email_messages SET status = :status WHERE id = ANY(:ids)"),
                {"status": self.rng.choice(STATUSES), "ids": [row.message_id for row in chosen]},
            )

    def add_row(self) -> None:
        first = self.rows[0]
        with transaction(self.factory) as session:
            task = session.get_one(Task, self.task_id)
            row = make_message(
                session,
                task.organization_id,
                first.connector_id,
                task_id=self.task_id,
                recipient=f"new{len(self.rows)}@example.test",
                status=self.rng.choice(STATUSES),
            )
        self.rows.append(row)
        self.topics[row.message_id] = self.rng.choice(TOPICS)

    def unsubscribe(self) -> None:
        row = self.rng.choice(self.rows)
        token = UnsubscribeToken(
            row.organization_id, row.message_id, row.recipient, self.topics[row.message_id]
        )
        scope = self.rng.choice(list(Scope))
        with transaction(self.factory) as session:
            unsubscribe(session, token, scope, source=UnsubscribeSource.ONE_CLICK, now=datetime.now(UTC))

    def roll_back(self) -> None:
        """Status changes, a new row and an applied event, all rolled back: the task adds nothing."""
        with self.factory() as session:
            session.execute(
                text("UPDATE email_messages SET status = 'failed' WHERE task_id = :task"),
                {"task": self.task_id},
            )
            first = self.rows[0]
            make_message(session, first.organization_id, first.connector_id, task_id=self.task_id)
            session.rollback()

    def finish(self) -> None:
        process_events(self.factory, list(self.pending), now=T0 + timedelta(minutes=1))
        self.done(list(self.pending))


@pytest.mark.parametrize("seed", SEEDS)
def test_incremental_figures_equal_a_recount_over_a_random_stream(
    session_factory: Factory, seed: int
) -> None:
    stream = Stream(session_factory, seed)

    for step in range(STEPS):
        stream.step()
        if step == STEPS // 2:
            assert not recount(session_factory, stream.task_id).changed, f"seed {seed}, half-way"
    stream.finish()
    kept = figures(session_factory, stream.task_id)
    result = recount(session_factory, stream.task_id)

    assert result.after == kept, f"seed {seed}"
    assert kept["delivery"]["events"] > 0 and kept["sends"]["total"] >= 8


def test_two_workers_racing_batches_of_two_campaigns_keep_both_exact(session_factory: Factory) -> None:
    rng = random.Random(7)
    campaigns = [campaign(session_factory, 30) for _ in range(2)]
    event_ids = []
    with transaction(session_factory) as session:
        for _, rows in campaigns:
            for row in rows:
                for kind, extra in rng.sample(EVENTS, 4):
                    payload = resend_payload(kind, row.resend_email_id, recipient=row.recipient, **extra)
                    event_ids += [store_event(session, payload) for _ in range(rng.randint(1, 2))]
    rng.shuffle(event_ids)
    halves = [event_ids[0::2], event_ids[1::2]]
    rounds = 8
    barrier = threading.Barrier(2, timeout=60)

    def worker(ids: list[uuid.UUID]) -> int:
        size = len(ids) // rounds + 1
        for start in range(0, len(ids), size):
            barrier.wait()
            process_events(session_factory, ids[start : start + size], now=T0 + timedelta(minutes=1))
        return len(ids)

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert sum(pool.map(worker, halves)) == len(event_ids)

    for task_id, _ in campaigns:
        kept = figures(session_factory, task_id)
        assert not recount(session_factory, task_id).changed
        assert kept["delivery"]["events"] > 0


def test_a_status_change_by_any_statement_moves_the_tasks_sends(session_factory: Factory) -> None:
    task_id, rows = campaign(session_factory, 3)
    with transaction(session_factory) as session:
        session.execute(
            text("UPDATE email_messages SET status = 'delivered' WHERE id = :id"), {"id": rows[0].message_id}
        )

    assert figures(session_factory, task_id)["sends"] == {"sent": 2, "delivered": 1, "total": 3}


def test_a_rolled_back_transaction_adds_nothing_to_the_task(session_factory: Factory) -> None:
    task_id, rows = campaign(session_factory, 2)
    before = figures(session_factory, task_id)
    with session_factory() as session:
        session.execute(
            text("UPDATE email_messages SET status = 'failed' WHERE task_id = :t"), {"t": task_id}
        )
        session.add(
            EmailMessage(
                organization_id=rows[0].organization_id,
                connector_id=rows[0].connector_id,
                task_id=task_id,
                idempotency_key="test/rolled-back",
                recipient="late@example.test",
            )
        )
        session.flush()
        session.rollback()

    assert figures(session_factory, task_id) == before == {"sends": {"sent": 2, "total": 2}}


def test_pilot_tasks_recount_corrects_figures_that_drifted(pilot: Pilot, session_factory: Factory) -> None:
    task_id, _ = campaign(session_factory, 2)
    with transaction(session_factory) as session:
        session.get_one(Task, task_id).execution_result = {"sends": {"sent": 9, "total": 9}, "send": {"x": 1}}

    first = pilot("tasks", "recount", "--task", str(task_id))
    second = pilot("tasks", "recount", "--task", str(task_id))

    assert first.exit_code == 0, first.output
    assert f"task {task_id}: 2 sends, 0 events, corrected" in first.output
    assert "unchanged" in second.output
    with session_factory() as session:
        assert session.get_one(Task, task_id).execution_result == {
            "sends": {"sent": 2, "total": 2},
            "send": {"x": 1},
        }


def test_pilot_tasks_recount_names_an_unknown_task(pilot: Pilot) -> None:
    missing = uuid.uuid4()

    result = pilot("tasks", "recount", "--task", str(missing))

    assert result.exit_code == 1
    assert f"no task with id {missing}" in result.output


def test_pilot_tasks_recount_all_counts_every_task(pilot: Pilot, session_factory: Factory) -> None:
    for _ in range(3):
        campaign(session_factory, 1)

    result = pilot("tasks", "recount", "--all")

    assert result.exit_code == 0, result.output
    assert "3 tasks, 0 corrected" in result.output
