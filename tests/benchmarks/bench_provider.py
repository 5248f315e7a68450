"""Emails per second against Resend's request limit: the sandbox at 2 and at 5 requests a second.

Resend limits requests, not emails; a batch request carries 100 emails, so the most a team can send
is rate x 100 emails a second. For each rate, on a fresh worker (prefork, concurrency 4) whose
request rate is set to the sandbox's:

* ``send_email``: single-recipient ``pilot.send_email`` tasks, all queued at once;
* ``send_batch``: 30 ``pilot.send_batch`` tasks of 100;
* ``idle``: single sends one after another (each sent before the next is queued), enqueue to
  ``sent``, p50;
* head-of-line: a bulk campaign (``--campaign``, 50,000) then transactional sends (``--singles``,
  20, 0.5 s apart) on the same API key: their enqueue-to-sent p50 and p95, through the priority
  queue and, for comparison, through the bulk queue behind the campaign's tasks.

Prints emails a second, requests per email (the sandbox's count), the share of rate x 100 reached,
and 429s. ``--baseline REV`` runs the same workloads, in the same run, on the worker of commit REV
(checked out in a temporary git worktree; the same database schema and dependencies), so the
ratios compare like with like: its ``send_email`` makes one request per task, so it gets fewer tasks
(``--baseline-emails``).

    .venv/bin/python tests/benchmarks/bench_provider.py [--rates 2,5] [--emails 1000]
        [--baseline REV] [--baseline-emails 60] [--idle 30] [--campaign 50000] [--singles 20]
        [--only-head-of-line]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx
from sqlalchemy import func, select

from shared import migrations, task_names
from shared.db import make_engine, make_sessionmaker
from shared.models import EmailMessage
from shared.rate_limit import REQUEST_RATE_PACE
from shared.resend_client import ResendClient
from shared.resend_http import ResendHTTP
from shared.settings import load_settings
from shared.task_producer import publish
from tests.conftest import create_database, drop_database
from tests.sandbox_process import SandboxHandle, running_sandbox
from tests.send_helpers import SENDER, add_connector, batch_payload, send_payload
from tests.worker_process import ROOT, isolated_redis_db, running_worker, worker_env
from worker.celery_app import make_celery

BATCH_TASKS = 30
CONCURRENCY = 4
TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Figures:
    """One workload's result."""

    emails: int
    seconds: float
    requests: int
    rejected: int

    def line(self, rate: float) -> str:
        per_second = self.emails / self.seconds
        return (
            f"{per_second:7.1f} emails/s, {self.requests / self.emails:.3f} requests/email, "
            f"{per_second / (rate * 100):.2f} of rate x 100, {self.rejected} 429s"
        )


class Bench:
    """A database, a Redis database and a sandbox at ``rate`` requests a second."""

    def __init__(self, database_url: str, sandbox: SandboxHandle, db: int, rate: float) -> None:
        self.sandbox = sandbox
        self.rate = rate
        self.env = worker_env(
            database_url=database_url, redis_db=db, resend_base_url=sandbox.url, requests_per_second=rate
        )
        settings = load_settings(database_url=database_url, redis_url=self.env["REDIS_URL"])
        self.factory = make_sessionmaker(make_engine(settings))
        self.app = make_celery(settings)

    @contextlib.contextmanager
    def worker(self, root: Path) -> Iterator[None]:
        with running_worker(self.env, concurrency=CONCURRENCY, pool="prefork", root=root):
            yield

    def connector(self) -> uuid.UUID:
        return add_connector(self.factory, per_hour=10_000_000, per_day=100_000_000)[1]

    def sends(self, root: Path, emails: int) -> Figures:
        connector_id = self.connector()
        return self._timed(
            root,
            connector_id,
            emails,
            lambda: [
                self.app.send_task(
                    task_names.SEND_EMAIL, kwargs=send_payload(connector_id, f"u{i}@example.test")
                )
                for i in range(emails)
            ],
        )

    def batches(self, root: Path) -> Figures:
        connector_id = self.connector()

        def publish() -> None:
            for b in range(BATCH_TASKS):
                to = [f"b{b}-{i}@example.test" for i in range(100)]
                self.app.send_task(task_names.SEND_BATCH, kwargs=batch_payload(connector_id, to))

        return self._timed(root, connector_id, BATCH_TASKS * 100, publish)

    def idle(self, root: Path, count: int) -> float:
        """p50 seconds from enqueue to ``sent`` of single sends, one at a time."""
        connector_id = self.connector()
        latencies = []
        with self.worker(root):
            for i in range(count):
                queued_at = datetime.now().astimezone()
                self.app.send_task(
                    task_names.SEND_EMAIL, kwargs=send_payload(connector_id, f"i{i}@example.test")
                )
                sent_at = self._wait_sent(connector_id, i + 1)
                latencies.append((sent_at - queued_at).total_seconds())
                time.sleep(1.5 / self.rate)  # the next one finds the request token free: idle
        return statistics.median(latencies)

    def head_of_line(self, campaign: int, singles: int, *, own_queue: bool) -> tuple[float, float, float]:
        """p50 and p95 seconds from enqueue to ``sent`` of ``singles`` transactional sends, spaced
        0.5 s, queued right after a bulk campaign of ``campaign`` recipients on the same API key, and
        the p50 of the part before their rows were written (broker wait and recording).

        ``own_queue``: they go to the priority queue (as the producer routes them); otherwise to the
        bulk queue behind the campaign's tasks (what one shared queue would do), for comparison.
        """
        connector_id = self.connector()
        latencies = []
        recorded = []
        with self.worker(ROOT):
            for b in range(campaign // 100):
                to = [f"c{b}-{i}@example.test" for i in range(100)]
                publish(self.app, task_names.SEND_BATCH, kwargs=batch_payload(connector_id, to))
            queued = {}
            for i in range(singles):
                recipient = f"t{i}@example.test"
                queued[recipient] = datetime.now().astimezone()
                kwargs = send_payload(connector_id, recipient)
                if own_queue:
                    publish(self.app, task_names.SEND_EMAIL, kwargs=kwargs)
                else:
                    self.app.send_task(task_names.SEND_EMAIL, kwargs=kwargs, queue=task_names.SENDS_QUEUE)
                time.sleep(0.5)
            for recipient, at in queued.items():
                created_at, sent_at = self._wait_recipient_sent(connector_id, recipient)
                latencies.append((sent_at - at).total_seconds())
                recorded.append((created_at - at).total_seconds())
        latencies.sort()
        p95 = latencies[math.ceil(0.95 * len(latencies)) - 1]
        return statistics.median(latencies), p95, statistics.median(recorded)

    def _wait_recipient_sent(self, connector_id: uuid.UUID, recipient: str) -> tuple[datetime, datetime]:
        query = select(EmailMessage.created_at, EmailMessage.sent_at).where(
            EmailMessage.connector_id == connector_id,
            EmailMessage.recipient == recipient,
            EmailMessage.status == "sent",
        )
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            with self.factory() as session:
                found = session.execute(query).first()
            if found is not None:
                return found[0], found[1]
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {recipient}")
            time.sleep(0.005)

    def _timed(
        self, root: Path, connector_id: uuid.UUID, emails: int, publish: Callable[[], object]
    ) -> Figures:
        self.sandbox.reset()
        with self.worker(root):
            started = time.monotonic()
            publish()
            self._wait_sent(connector_id, emails)
            seconds = time.monotonic() - started
        counts = self.sandbox.stats()["counts"]
        return Figures(emails, seconds, int(counts.get("requests", 0)), int(counts.get("rate_limited", 0)))

    def _wait_sent(self, connector_id: uuid.UUID, count: int) -> datetime:
        query = select(func.count(), func.max(EmailMessage.sent_at)).where(
            EmailMessage.connector_id == connector_id, EmailMessage.status == "sent"
        )
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            with self.factory() as session:
                done, last = session.execute(query).one()
            if done >= count:
                return last
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out: {done} of {count} sent")
            time.sleep(0.005)


def batch_round_trip(sandbox: SandboxHandle, rate: float, count: int = 10) -> float:
    """p50 seconds of a 100-email ``POST /emails/batch`` to the sandbox (what a unit carrying a
    transactional email with 99 bulk ones costs on the wire), spaced to stay under its rate."""
    http = ResendHTTP(sandbox.url, timeout=httpx.Timeout(10.0))
    client = ResendClient(http=http, api_key="re_bench_round_trip")
    seconds = []
    try:
        for n in range(count):
            emails = [
                {"from": SENDER, "to": [f"rt{n}-{i}@example.test"], "subject": "Hi", "html": "<p>x</p>"}
                for i in range(100)
            ]
            started = time.perf_counter()
            client.send_batch(emails, idempotency_key=f"round-trip-{uuid.uuid4()}")
            seconds.append(time.perf_counter() - started)
            time.sleep(1.5 / rate)
    finally:
        http.close()
    return statistics.median(seconds)


@contextlib.contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """Commit ``rev`` checked out in a temporary git worktree, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as parent:
        path = Path(parent) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(path), rev], cwd=ROOT, check=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="2,5", help="sandbox request rates, requests a second")
    parser.add_argument("--emails", type=int, default=1000, help="single-recipient send_email tasks")
    parser.add_argument("--baseline", help="a commit to measure in the same run (e.g. the one before)")
    parser.add_argument("--baseline-emails", type=int, default=60, help="send_email tasks for the baseline")
    parser.add_argument("--idle", type=int, default=30, help="single sends for the idle latency")
    parser.add_argument("--campaign", type=int, default=50_000, help="bulk recipients before the singles")
    parser.add_argument("--singles", type=int, default=20, help="transactional sends behind the campaign")
    parser.add_argument("--only-head-of-line", action="store_true", help="skip the throughput workloads")
    options = parser.parse_args()
    name = f"pilot_bench_provider_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        migrations.upgrade(url)
        with contextlib.ExitStack() as stack:
            trees = {"now": ROOT}
            if options.baseline:
                trees[options.baseline] = stack.enter_context(checkout(options.baseline))
            for rate in (float(value) for value in options.rates.split(",")):
                with running_sandbox(rate_limit_per_second=rate) as sandbox, isolated_redis_db() as db:
                    bench = Bench(url, sandbox, db, rate)
                    print(f"== sandbox at {rate:g} requests/s (limit {rate * 100:.0f} emails/s)")
                    idle = {}
                    if options.only_head_of_line:
                        idle["now"] = bench.idle(ROOT, options.idle)
                        print(
                            f"{'now':>12s} idle single send, enqueue to sent: p50 {idle['now'] * 1000:.0f} ms"
                        )
                    for label, root in trees.items():
                        if options.only_head_of_line:
                            break
                        emails = options.emails if label == "now" else options.baseline_emails
                        print(f"{label:>12s} send_email x{emails}: {bench.sends(root, emails).line(rate)}")
                        print(f"{label:>12s} send_batch {BATCH_TASKS}x100: {bench.batches(root).line(rate)}")
                        idle[label] = bench.idle(root, options.idle)
                        print(
                            f"{label:>12s} idle single send, enqueue to sent: p50 {idle[label] * 1000:.0f} ms"
                        )
                    if options.baseline and not options.only_head_of_line:
                        ratio = idle["now"] / idle[options.baseline]
                        print(f"{'':>12s} idle p50 now / {options.baseline}: {ratio:.2f}x")
                    interval = 1 / (rate * REQUEST_RATE_PACE)
                    target = 2 * idle["now"] + interval
                    round_trip = batch_round_trip(sandbox, rate)
                    proposed = target + round_trip
                    print(
                        f"{'':>12s} a 100-email batch request: p50 {round_trip * 1000:.0f} ms; the issue's "
                        f"target (2 x idle p50 + {interval * 1000:.0f} ms) {target * 1000:.0f} ms, plus one "
                        f"batch request {proposed * 1000:.0f} ms"
                    )
                    for own_queue in (True, False):
                        with isolated_redis_db() as hol_db:
                            hol = Bench(url, sandbox, hol_db, rate)
                            p50, p95, written = hol.head_of_line(
                                options.campaign, options.singles, own_queue=own_queue
                            )
                        where = "priority queue" if own_queue else "bulk queue (one shared queue)"
                        print(
                            f"{'now':>12s} {options.singles} transactional behind {options.campaign} bulk, "
                            f"{where}: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms "
                            f"({p95 / target:.2f} of the issue's target, {p95 / proposed:.2f} of the one "
                            "with a batch request); "
                            f"enqueue to row written p50 {written * 1000:.0f} ms"
                        )
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
