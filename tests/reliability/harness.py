"""The running pieces of a reliability scenario and the ways to look at them.

A :class:`Stack` is one scenario's world: its own database (on the shared PostgreSQL, or on a
private server), its own ``redis-server`` (broker and rate buckets, free to restart), a sandbox
standing in for Resend, and a Celery app to publish with. Workers and the receiver are started by
the scenario (often more than once) with the helpers of ``tests/worker_process.py`` and
``tests/receiver_process.py``.

:class:`Beat` stands in for ``celery beat``: a thread that runs the same maintenance functions the
beat tasks run (release scheduled and deferred rows, sweep lost work, reconcile orphaned sends,
re-enqueue unprocessed webhook events) every second, with the clock of the sweep and the reconcile moved
forward so that "untouched for 5 minutes" becomes "untouched for a few seconds". The product's
thresholds are unchanged; only the wait for them is compressed (the figures say so).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared import task_names
from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import EmailMessage
from shared.sending.context import SendContext
from shared.sending.outbox import enqueue_send
from shared.sending.scheduling import Publish, ReservingScheduler
from shared.settings import Settings, load_settings
from tests.reliability.servers import RedisServer
from tests.sandbox_process import SandboxHandle
from tests.send_helpers import add_connector, send_payload
from tests.worker_process import worker_env
from worker.beat import maintenance
from worker.celery_app import make_celery
from worker.events.tasks import process_pending_events

logger = logging.getLogger(__name__)

#: ``PILOT_RELIABILITY=full`` runs the issue's sizes (``make reliability``); anything else the short ones.
FULL = os.environ.get("PILOT_RELIABILITY", "").strip().lower() == "full"


def size(short: Any, full: Any) -> Any:
    """``full`` under ``PILOT_RELIABILITY=full``, else ``short``."""
    return full if FULL else short


def settle(
    condition: Callable[[], object],
    what: str,
    timeout: float,
    *,
    every: float = 0.1,
    state: Callable[[], object] | None = None,
) -> None:
    """Wait until ``condition()`` holds; fail naming ``what`` (and ``state()``) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            seen = f"; state: {state()}" if state else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{seen}")
        time.sleep(every)


def recipients(prefix: str, n: int) -> list[str]:
    """``n`` distinct addresses (unique per run)."""
    run = uuid.uuid4().hex[:6]
    return [f"{prefix}-{i:05d}-{run}@example.test" for i in range(n)]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Stack:
    """One scenario's database, Redis, sandbox and publisher (workers are started separately)."""

    database_url: str
    factory: sessionmaker[Session]
    redis: RedisServer
    sandbox: SandboxHandle
    app: Celery
    env: dict[str, str] = field(default_factory=dict)

    # Sending -------------------------------------------------------------------------------------

    def connector(
        self, *, per_hour: int = 1_000_000, per_day: int = 10_000_000, reserve_per_hour: int = 0
    ) -> uuid.UUID:
        """A new organization and connector (the workers' RESEND_API_KEY is its key)."""
        return add_connector(
            self.factory, per_hour=per_hour, per_day=per_day, reserve_per_hour=reserve_per_hour
        )[1]

    def publish(self, connector_id: uuid.UUID, to: str, *, task_id: str | None = None, **fields: Any) -> None:
        """``send_task("pilot.send_email")`` as an upstream app without our code would."""
        self.app.send_task(
            task_names.SEND_EMAIL, kwargs=send_payload(connector_id, to, **fields), task_id=task_id
        )

    def outbox(self, connector_id: uuid.UUID, to: Sequence[str], **fields: Any) -> list[uuid.UUID]:
        """One email per address through the transactional outbox: rows first, publish after commit."""
        ids: list[uuid.UUID] = []
        with transaction(self.factory) as session:
            for address in to:
                ids += enqueue_send(
                    session,
                    self.app,
                    connector_id=str(connector_id),
                    to=address,
                    subject="Hi",
                    html="<p>x</p>",
                    **fields,
                )
        return ids

    # Looking ----------------------------------------------------------------------------------------

    def statuses(self, connector_id: uuid.UUID) -> Counter[str]:
        """Ledger rows of the connector by status."""
        with self.factory() as session:
            query = select(EmailMessage.status, func.count()).where(EmailMessage.connector_id == connector_id)
            return Counter({status: n for status, n in session.execute(query.group_by(EmailMessage.status))})

    def deliveries(self, to: Sequence[str]) -> Counter[str]:
        """Emails the sandbox accepted, per address of ``to`` (a duplicate counts twice)."""
        wanted = set(to)
        return Counter(a for email in self.sandbox.emails() for a in email["to"] if a in wanted)

    def broker_backlog(self) -> int:
        """Messages queued, held unacked or scheduled on the broker."""
        import redis

        client = redis.Redis.from_url(self.redis.url, socket_timeout=2)
        try:
            queues = task_names.CONSUMED_QUEUES
            return sum(int(client.llen(q)) for q in queues) + int(client.hlen("unacked"))
        finally:
            client.close()


@contextlib.contextmanager
def stack(
    database_url: str, redis_server: RedisServer, sandbox: SandboxHandle, **env: str
) -> Iterator[Stack]:
    """A :class:`Stack` over running services; ``env`` adds worker environment variables."""
    settings = load_settings(database_url=database_url, redis_url=redis_server.url)
    engine = make_engine(settings)
    app = make_celery(settings)
    worker_environment = worker_env(database_url=database_url, redis_db=0, resend_base_url=sandbox.url, **env)
    worker_environment.update(REDIS_URL=redis_server.url, CELERY_BROKER_URL=redis_server.url)
    try:
        yield Stack(database_url, make_sessionmaker(engine), redis_server, sandbox, app, worker_environment)
    finally:
        app.close()
        engine.dispose()


class Beat(threading.Thread):
    """Runs the beat's maintenance every ``interval`` seconds in this process (see the module doc).

    ``sweep_after``/``reconcile_after``/``events_after`` are the compressed thresholds: a queued row
    untouched that long is published again, an orphaned ``sending`` row reconciled, an unprocessed
    webhook event enqueued again. A publish that fails (broker down) is left to the next round, as
    in production.
    """

    def __init__(
        self,
        stack: Stack,
        *,
        interval: float = 1.0,
        sweep_after: float = 10.0,
        reconcile_after: float = 10.0,
        events_after: float = 10.0,
    ) -> None:
        super().__init__(name="reliability-beat", daemon=True)
        self.stack = stack
        self.interval = interval
        self.sweep_shift = maintenance.STUCK_QUEUED_AFTER - timedelta(seconds=sweep_after)
        self.reconcile_shift = maintenance.STUCK_SENDING_AFTER - timedelta(seconds=reconcile_after)
        self.events_grace = timedelta(seconds=events_after)
        self.stopping = threading.Event()
        self.published = Counter[str]()
        self.app = make_celery(load_settings(database_url=stack.database_url, redis_url=stack.redis.url))
        self.ctx = send_context(stack, self._publish_dispatch)

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.tick()

    def tick(self) -> None:
        """One round of every maintenance task."""
        factory, ctx = self.stack.factory, self.ctx
        steps: list[tuple[str, Callable[[], object]]] = [
            ("scheduled", lambda: maintenance.release_scheduled(factory, ctx, now=utc_now())),
            ("released", lambda: maintenance.release_deferred(factory, ctx, now=utc_now())),
            ("swept", lambda: maintenance.sweep(factory, ctx, now=utc_now() + self.sweep_shift)),
            (
                "reconciled",
                lambda: maintenance.reconcile(factory, ctx, now=utc_now() + self.reconcile_shift)[0],
            ),
            ("events", lambda: process_pending_events(factory, self._enqueue_event, grace=self.events_grace)),
        ]
        for name, step in steps:
            try:
                count = step()
            except Exception as exc:  # a service is down: the next round tries again, as beat would
                logger.info("beat %s failed: %s", name, exc)
            else:
                self.published[name] += int(count)  # type: ignore[call-overload]

    def _publish_dispatch(self, name: str, kwargs: dict[str, Any], countdown: float) -> None:
        self.app.send_task(name, kwargs=kwargs, countdown=countdown)

    def _enqueue_event(self, event_id: str) -> None:
        self.app.send_task(task_names.PROCESS_WEBHOOK_EVENT, args=[event_id], queue=task_names.EVENTS_QUEUE)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)
        self.ctx.close()
        self.app.close()


def send_context(stack: Stack, publish: Publish) -> SendContext:
    """A send context configured as the scenario's workers are (their environment), scheduling
    dispatches through ``publish``: what beat's maintenance runs with."""
    fields = {
        name.lower(): value for name, value in stack.env.items() if name.lower() in Settings.model_fields
    }
    ctx = SendContext.from_settings(load_settings(**fields))
    ctx.scheduler = ReservingScheduler(ctx.limiter, publish)
    return ctx


@contextlib.contextmanager
def running_beat(stack: Stack, **thresholds: float) -> Iterator[Beat]:
    """A :class:`Beat` for the block."""
    beat = Beat(stack, **thresholds)
    beat.start()
    try:
        yield beat
    finally:
        beat.stop()
