"""End-to-end emails per second through the real worker and the sandbox (limits set high).

For each pool (prefork and threads at several concurrencies, see POOLS), three measurements, each on a
freshly started worker that finds all its tasks already queued (so neither start-up nor publishing
is timed; the rate comes from execution times recorded inside the worker):

* no-op tasks (``tests/benchmarks/noop_tasks.py``): the ceiling of one task per email;
* ``pilot.send_email``, one task per email;
* ``pilot.send_batch``, 100 emails per task.

Prints medians of ``RUNS`` runs, the ratios the issue targets (send_email >= 0.6x no-op, send_batch
>= 10x send_email) and the worker's memory (RSS of the main process plus its children, after the
run). Then where the CPU went, per task or email: the worker's main process, its pool children,
the sandbox, PostgreSQL and Redis, read from ``/proc`` from the time a tenth of the work is done
(start-up excluded) to the end. The machine is shared: figures are noisy.

    .venv/bin/python tests/benchmarks/bench_worker.py [runs] [pool[:concurrency] ...]   # e.g. 3 prefork:4
"""

from __future__ import annotations

import math
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import redis
from sqlalchemy import func, select

from shared import migrations, task_names
from shared.db import make_engine, make_sessionmaker
from shared.models import EmailMessage
from shared.settings import load_settings
from tests.benchmarks.cpu_accounting import Group, cpu_seconds, processes_named
from tests.benchmarks.noop_tasks import NOOP_TASK
from tests.conftest import create_database, drop_database
from tests.sandbox_process import running_sandbox
from tests.send_helpers import add_connector, batch_payload, send_payload
from tests.worker_process import children_of, isolated_redis_db, running_worker, worker_env
from worker.celery_app import make_celery

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
#: Pools to measure (all of POOLS unless named on the command line).
CHOSEN_POOLS = set(sys.argv[2:])
NOOP_TASKS = 2000
SEND_EMAILS = 1000
BATCH_TASKS = 40  # x 100 emails
#: (pool, concurrency): prefork children are processes; threads share the main process (and its GIL
#: with the consumer loop). Sends wait on PostgreSQL, Redis and HTTP, so more than one per core.
POOLS = (("prefork", 2), ("prefork", 4), ("threads", 8))
TIMEOUT_S = 300.0


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children, in MB."""
    total = 0
    for process in [pid, *children_of(pid)]:
        for line in Path(f"/proc/{process}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def wait_for(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


@dataclass(frozen=True)
class Workload:
    """One measurement's work: how to queue it, how much of it is done, its rate once all is done."""

    items: int
    publish: Callable[[], None]
    done: Callable[[], int]
    rate: Callable[[], float]


@dataclass(frozen=True)
class Measurement:
    per_second: float
    rss_mb: float
    #: CPU milliseconds per item, by process group.
    cpu_ms: dict[str, float]


class Bench:
    """Database, sandbox and a Redis database, shared by every measurement."""

    def __init__(self, database_url: str, sandbox_url: str, sandbox_pid: int, db: int) -> None:
        self.env = worker_env(
            database_url=database_url, redis_db=db, resend_base_url=sandbox_url, requests_per_second=1e6
        )
        self.sandbox_pid = sandbox_pid
        self.settings = load_settings(database_url=database_url, redis_url=self.env["REDIS_URL"])
        self.factory = make_sessionmaker(make_engine(self.settings))
        self.app = make_celery(self.settings)
        self.redis = redis.Redis.from_url(self.env["REDIS_URL"])

    def measure(self, pool: str, concurrency: int, kind: str) -> Measurement:
        """Rate, worker RSS and CPU per item for one measurement on a fresh worker."""
        work: Workload = getattr(self, f"_{kind}")()
        work.publish()
        with running_worker(
            self.env, pool=pool, concurrency=concurrency, include=["tests.benchmarks.noop_tasks"]
        ) as worker:
            groups = self._process_groups(worker.pid)
            cpu_start, done_start = cpu_seconds(groups), work.done()
            wait_for(lambda: work.done() >= work.items // 10, f"a tenth of the {kind} work")
            cpu_before, done_before = cpu_seconds(groups), work.done()
            if done_before >= work.items:
                # All of it ran between two polls: count from when the worker was up instead.
                cpu_before, done_before = cpu_start, done_start
            value = work.rate()
            cpu_after, items = cpu_seconds(groups), work.done() - done_before
            # No item left to count (the worker ran everything while starting): no CPU figure.
            cpu_ms = {
                name: (cpu_after[name] - cpu_before[name]) * 1000 / items if items else math.nan
                for name in groups
            }
            return Measurement(value, rss_mb(worker.pid), cpu_ms)

    def _process_groups(self, worker_pid: int) -> dict[str, Group]:
        return {
            "worker main": lambda: [worker_pid],
            "pool children": lambda: children_of(worker_pid),
            "sandbox": lambda: [self.sandbox_pid, *children_of(self.sandbox_pid)],
            "postgres": processes_named("postgres"),
            "redis": processes_named("redis-server"),
        }

    def _noop(self) -> Workload:
        run = uuid.uuid4().hex[:8]

        def publish() -> None:
            for _ in range(NOOP_TASKS):
                self.app.send_task(NOOP_TASK, kwargs={"run": run}, queue=task_names.SENDS_QUEUE)

        def done() -> int:
            return int(self.redis.get(f"bench:{run}:count") or 0)

        def rate() -> float:
            wait_for(lambda: done() >= NOOP_TASKS, "no-op tasks")
            first, last = (float(self.redis.get(f"bench:{run}:{k}") or 0) for k in ("first", "last"))
            return NOOP_TASKS / (last - first)

        return Workload(NOOP_TASKS, publish, done, rate)

    def _send_email(self) -> Workload:
        _, connector_id = add_connector(self.factory, per_hour=10_000_000, per_day=100_000_000)

        def publish() -> None:
            for i in range(SEND_EMAILS):
                self.app.send_task(
                    task_names.SEND_EMAIL, kwargs=send_payload(connector_id, f"u{i}@example.test")
                )

        return self._sends(connector_id, SEND_EMAILS, publish)

    def _send_batch(self) -> Workload:
        _, connector_id = add_connector(self.factory, per_hour=10_000_000, per_day=100_000_000)

        def publish() -> None:
            for b in range(BATCH_TASKS):
                to = [f"b{b}-{i}@example.test" for i in range(100)]
                self.app.send_task(task_names.SEND_BATCH, kwargs=batch_payload(connector_id, to))

        return self._sends(connector_id, BATCH_TASKS * 100, publish)

    def _sends(self, connector_id: uuid.UUID, expected: int, publish: Callable[[], None]) -> Workload:
        query = select(func.count(), func.min(EmailMessage.created_at), func.max(EmailMessage.sent_at)).where(
            EmailMessage.connector_id == connector_id, EmailMessage.status == "sent"
        )

        def done() -> int:
            with self.factory() as session:
                return int(session.execute(query).one()[0])

        def rate() -> float:
            wait_for(lambda: done() >= expected, "sends")
            with self.factory() as session:
                count, first, last = session.execute(query).one()
            return float(count) / (last - first).total_seconds()

        return Workload(expected, publish, done, rate)


def report(pool: str, concurrency: int, runs: dict[str, list[Measurement]]) -> None:
    """One line of medians and ratios, one line of every run, and the CPU per item."""
    figures = {kind: [run.per_second for run in measured] for kind, measured in runs.items()}
    memory = [run.rss_mb for measured in runs.values() for run in measured]
    m = {kind: statistics.median(values) for kind, values in figures.items()}
    print(
        f"{pool:8s} c={concurrency}: no-op {m['noop']:7.0f} tasks/s | "
        f"send_email {m['send_email']:6.0f} emails/s ({m['send_email'] / m['noop']:.2f}x no-op) | "
        f"send_batch {m['send_batch']:7.0f} emails/s ({m['send_batch'] / m['send_email']:.1f}x send_email)"
        f" | worker RSS {statistics.median(memory):.0f} MB (max {max(memory):.0f})"
    )
    every = "; ".join(f"{kind} {[round(v) for v in values]}" for kind, values in figures.items())
    print(f"{'':10s} runs: {every}")
    for kind, measured in runs.items():
        cpu = {name: statistics.median(run.cpu_ms[name] for run in measured) for name in measured[0].cpu_ms}
        parts = ", ".join(f"{name} {ms:.2f}" for name, ms in cpu.items())
        unit = "task" if kind == "noop" else "email"
        print(f"{'':10s} CPU ms per {unit}, {kind}: {parts}; total {sum(cpu.values()):.2f}")


def main() -> None:
    name = f"pilot_bench_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        migrations.upgrade(url)
        with running_sandbox(rate_limit_per_second=0) as sandbox, isolated_redis_db() as db:
            bench = Bench(url, sandbox.url, sandbox.pid, db)
            print(f"machine shared with other work; medians of {RUNS} runs")
            for pool, concurrency in POOLS:
                if CHOSEN_POOLS and not CHOSEN_POOLS & {pool, f"{pool}:{concurrency}"}:
                    continue
                runs: dict[str, list[Measurement]] = {"noop": [], "send_email": [], "send_batch": []}
                for _ in range(RUNS):
                    for kind, measured in runs.items():
                        measured.append(bench.measure(pool, concurrency, kind))
                        sandbox.reset()
                report(pool, concurrency, runs)
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
