"""``task_id`` is the caller's correlation id: an unknown one becomes its ``tasks`` row on first use.

Creating it is idempotent and race-safe (``INSERT ... ON CONFLICT DO NOTHING``) and scoped to the
connector's organization: a task id another organization created is still refused.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from shared.models import Task
from shared.sending import pipeline as sending
from shared.sending.context import SendContext
from tests.fake_resend import FakeResend
from tests.send_helpers import add_connector, rows, send_payload

pytestmark = pytest.mark.integration


def test_an_unknown_task_id_creates_its_task_for_the_connectors_organization(ctx, resend, factory) -> None:
    organization, connector = add_connector(factory)
    task_id = uuid.uuid4()

    outcome = sending.send_email(
        ctx, send_payload(connector, "ada@example.test", task_id=str(task_id)), task_ref="t1"
    )

    assert outcome.counts() == {"sent": 1}
    with factory() as session:
        task = session.get(Task, task_id)
        assert task is not None and task.organization_id == organization
    assert [row.task_id for row in rows(factory, connector)] == [task_id]


def test_the_same_task_id_used_again_joins_the_same_task(ctx, resend, factory) -> None:
    _, connector = add_connector(factory)
    task_id = str(uuid.uuid4())

    sending.send_email(ctx, send_payload(connector, "ada@example.test", task_id=task_id), task_ref="t1")
    sending.send_email(ctx, send_payload(connector, "grace@example.test", task_id=task_id), task_ref="t2")

    with factory() as session:
        assert session.scalars(select(Task.id).where(Task.id == uuid.UUID(task_id))).all() == [
            uuid.UUID(task_id)
        ]
    assert {str(row.task_id) for row in rows(factory, connector)} == {task_id}


def test_concurrent_first_uses_of_one_task_id_make_one_task_and_refuse_nothing(ctx, factory) -> None:
    _, connector = add_connector(factory)
    task_id = str(uuid.uuid4())
    senders = 6
    barrier = threading.Barrier(senders, timeout=30)

    def send(number: int) -> dict[str, int]:
        own = SendContext(
            settings=ctx.settings, engine=ctx.engine, limiter=ctx.limiter, http=FakeResend().client()
        )
        try:
            barrier.wait()
            payload = send_payload(connector, f"r{number}@example.test", task_id=task_id)
            return sending.send_email(own, payload, task_ref=f"sender-{number}").counts()
        finally:
            own.release()
            own.http.close()

    with ThreadPoolExecutor(max_workers=senders) as pool:
        counts = list(pool.map(send, range(senders)))

    assert all("failed" not in count for count in counts), counts
    assert len(rows(factory, connector)) == senders
    assert {str(row.task_id) for row in rows(factory, connector)} == {task_id}


def test_a_task_id_first_used_by_another_organization_is_refused(ctx, resend, factory) -> None:
    (_, a), (_, b) = add_connector(factory), add_connector(factory)
    task_id = str(uuid.uuid4())
    sending.send_email(ctx, send_payload(a, "ada@example.test", task_id=task_id), task_ref="ta")

    outcome = sending.send_email(ctx, send_payload(b, "ada@example.test", task_id=task_id), task_ref="tb")

    assert outcome.counts() == {"failed": 1}
    assert "task_id: the task belongs to another organization" in (outcome.results[0].reason or "")
