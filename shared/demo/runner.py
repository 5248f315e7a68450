"""Run the demo: database, processes, organization and connector, campaign, progress, report, stop.

Every process the demo starts is stopped before it returns, whatever happens in between.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import redis
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.orm import Session, sessionmaker

from shared import connector_store as store
from shared import migrations, task_names
from shared.crypto import KeyRing, generate_key
from shared.db import make_engine, make_sessionmaker, transaction
from shared.demo import campaign, one_click, outcomes, processes, report
from shared.models import MessageStatus, Priority, SuppressionReason, Task
from shared.rate_limit import ConnectorLimits, RateLimiter
from shared.reputation import guard
from shared.sending.ledger import count_by_status
from shared.service_check import HOW_TO_START, postgres_problem, redis_problem
from shared.settings import Settings, load_settings
from shared.suppression import suppress
from shared.task_producer import TaskProducer, publish
from shared.unsubscribe.tokens import generate_unsubscribe_key

#: The hour budget is below the campaign's size, so deferral shows in the report.
DEMO_PER_HOUR = 250
DEMO_PER_DAY = 2000
#: Kept for transactional mail, so the receipt sent while bulk mail is paused finds budget.
DEMO_RESERVE_PER_HOUR = 10
#: Readers of the newsletter sent after the campaign, which the reputation guard holds.
NEWSLETTER_READERS = 20
#: How long to wait for sends and webhooks to settle.
SETTLE_TIMEOUT_S = 90.0
QUIET_PERIOD_S = 3.0


@dataclass(frozen=True)
class DemoOptions:
    """Where the demo runs; tests point it at their own database, Redis database and prefix."""

    admin_database_url: str = os.environ.get(
        "PILOT_DEMO_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    database_name: str = os.environ.get("PILOT_DEMO_DATABASE", "pilot_demo")
    redis_url: str = os.environ.get("PILOT_DEMO_REDIS_URL", "redis://127.0.0.1:6379/15")
    redis_prefix: str = "pilot-demo:"
    work_dir: Path = Path(".demo")
    json_report: Path | None = None


@dataclass(frozen=True)
class DemoEnvironment:
    """Settings shared by the demo and every child it starts."""

    settings: Settings
    env: dict[str, str]
    sandbox_url: str
    receiver_url: str


def run_demo(options: DemoOptions, console: Console) -> report.DemoReport:
    """Run the whole demo and return its report (also printed, and written as JSON if asked)."""
    _check_services(options)
    environment = _prepare(options, console)
    children: list[processes.Child] = []
    try:
        children += _start_processes(environment, options, console)
        result = _run_campaign(environment, console, children)
    finally:
        console.print("Stopping the processes the demo started ...")
        processes.stop(children)
    report.render(result, console)
    if options.json_report:
        options.json_report.write_text(json.dumps(result.to_json(), indent=2, default=str))
    return result


def _check_services(options: DemoOptions) -> None:
    problems = [
        p for p in (postgres_problem(options.admin_database_url), redis_problem(options.redis_url)) if p
    ]
    if problems:
        raise DemoError("\n".join([*problems, HOW_TO_START]))


class DemoError(RuntimeError):
    """Raised when the demo cannot run; the message says what to do."""


def _prepare(options: DemoOptions, console: Console) -> DemoEnvironment:
    database_url = _recreate_database(options)
    console.print(f"Database [bold]{options.database_name}[/bold] created; migrating ...")
    migrations.upgrade(database_url)
    _purge_redis(options)
    sandbox_port, receiver_port = processes.free_port(), processes.free_port()
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": options.redis_url,
        "CELERY_BROKER_URL": options.redis_url,
        "PILOT_REDIS_PREFIX": options.redis_prefix,
        "RESEND_BASE_URL": f"http://127.0.0.1:{sandbox_port}",
        "RESEND_WEBHOOK_SECRET": secret,
        "RESEND_REQUESTS_PER_SECOND": "10",
        "PILOT_ENCRYPTION_KEYS": generate_key(),
        "PILOT_PUBLIC_URL": f"http://127.0.0.1:{receiver_port}",
        "PILOT_UNSUBSCRIBE_KEYS": generate_unsubscribe_key(),
        "PILOT_LOG_FORMAT": "human",
    }
    env.pop("RESEND_API_KEY", None)
    settings = load_settings(**{k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields})
    return DemoEnvironment(
        settings, env, f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{receiver_port}"
    )


def _recreate_database(options: DemoOptions) -> str:
    with psycopg.connect(options.admin_database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{options.database_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{options.database_name}"')
    base = options.admin_database_url.rsplit("/", 1)[0]
    return f"{base}/{options.database_name}"


def _purge_redis(options: DemoOptions) -> None:
    """Forget the previous run's queues and buckets (only our keys; the rest of the database stays)."""
    client = redis.Redis.from_url(options.redis_url)
    try:
        queues = task_names.CONSUMED_QUEUES
        keys = [
            *queues,
            campaign.OUTCOMES_QUEUE,
            "unacked",
            "unacked_index",
            "unacked_mutex",
            *client.scan_iter(f"{options.redis_prefix}*"),
        ]
        client.delete(*keys)
    finally:
        client.close()


def _start_processes(
    environment: DemoEnvironment, options: DemoOptions, console: Console
) -> list[processes.Child]:
    env, logs = environment.env, options.work_dir / "logs"
    sandbox_port = environment.sandbox_url.rsplit(":", 1)[1]
    receiver_port = environment.receiver_url.rsplit(":", 1)[1]
    sandbox_switches = {
        "--port": sandbox_port,
        "--webhook-url": f"{environment.receiver_url}/api/webhooks/resend",
        "--rate-limit-per-second": "10",
        "--open-rate": "0.45",
        "--click-rate": "0.2",
        "--soft-bounce-rate": "0.02",
        "--webhook-time-scale": "0.001",
        "--seed": "7",
    }
    sandbox_args = [part for pair in sandbox_switches.items() for part in pair]
    worker_queues = ",".join(task_names.CONSUMED_QUEUES)
    started = [
        processes.start(
            "sandbox",
            processes.python_module("sandbox", *sandbox_args),
            env={**env, "SANDBOX_WEBHOOK_SECRET": env["RESEND_WEBHOOK_SECRET"]},
            log_dir=logs,
        ),
        processes.start(
            "receiver",
            # Worker class, workers and timeouts come from the config module, as in docker-compose.
            processes.python_module(
                "gunicorn",
                "--config",
                "python:webhook_receiver.gunicorn_conf",
                "--bind",
                f"127.0.0.1:{receiver_port}",
                "webhook_receiver.wsgi:app",
            ),
            env=env,
            log_dir=logs,
        ),
        processes.start(
            "worker",
            processes.python_module(
                "celery",
                "-A",
                "worker.celery_app",
                "worker",
                "--loglevel",
                "INFO",
                "--queues",
                worker_queues,
                "--concurrency",
                "2",
                "--hostname",
                f"demo-{uuid.uuid4().hex[:6]}@%h",
            ),
            env=env,
            log_dir=logs,
        ),
        processes.start(
            "beat",
            processes.python_module(
                "celery",
                "-A",
                "worker.celery_app",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(options.work_dir / "beat-schedule"),
            ),
            env=env,
            log_dir=logs,
        ),
    ]
    console.print(
        "Started sandbox, receiver, worker and beat (logs in " + str(logs) + "); waiting for them ..."
    )
    processes.wait_for_http(f"{environment.sandbox_url}/_sandbox/stats", started[0])
    processes.wait_for_http(f"{environment.receiver_url}/healthz", started[1])
    return started


@dataclass(frozen=True)
class _Campaign:
    organization_id: uuid.UUID
    connector_id: uuid.UUID
    task_id: uuid.UUID
    limits: ConnectorLimits


def _run_campaign(
    environment: DemoEnvironment, console: Console, children: list[processes.Child]
) -> report.DemoReport:
    engine = make_engine(environment.settings, pool_size=2)
    factory = make_sessionmaker(engine)
    limiter = RateLimiter.from_settings(environment.settings)
    broker = TaskProducer(environment.settings.broker_url)
    audience = campaign.demo_audience()
    try:
        demo = _create_organization(factory, KeyRing.from_settings(environment.settings), audience)
        batches = campaign.enqueue_batches(
            broker,
            connector_id=demo.connector_id,
            organization_id=demo.organization_id,
            task_id=demo.task_id,
            recipients=audience.recipients,
        )
        console.print(f"Enqueued {len(audience.recipients)} emails in {batches} pilot.send_batch tasks.")
        _show_progress(factory, demo.task_id, len(audience.recipients), console, children)
        with factory() as session:
            unsubscribes = one_click.simulate(
                session,
                task_id=demo.task_id,
                organization_id=demo.organization_id,
                readers=campaign.ONE_CLICK_READERS,
                topic=campaign.TOPIC,
            )
        console.print(f"{campaign.ONE_CLICK_READERS} readers pressed their mail client's Unsubscribe button.")
        follow_up = _send_follow_up(factory, broker, demo, audience, console, children)
        after = _send_after_the_guard(factory, broker, demo, console, children)
        with factory() as session:
            usage = report.budget_usage(limiter, demo.connector_id, demo.limits)
            result = report.collect(
                session,
                task_id=demo.task_id,
                organization_id=demo.organization_id,
                recipients=len(audience.recipients),
                usage=usage,
            )
        result.follow_up = follow_up
        with factory() as session:
            result.reputation = report.reputation(
                session, environment.settings, organization_id=demo.organization_id, task_id=demo.task_id
            )
        result.reputation["after_the_guard"] = after
        result.outcomes = outcomes.read(factory, environment.settings.broker_url)
        result.unsubscribe = unsubscribes
        result.sandbox = httpx.get(f"{environment.sandbox_url}/_sandbox/stats", timeout=5).json()
        return result
    finally:
        broker.close()
        engine.dispose()


def _create_organization(
    factory: sessionmaker[Session], keyring: KeyRing, audience: campaign.Audience
) -> _Campaign:
    limits = ConnectorLimits(per_hour=DEMO_PER_HOUR, per_day=DEMO_PER_DAY)
    with transaction(factory) as session:
        org = store.create_organization(session, "Demo Shop", actor="demo")
        connector = store.create_connector(
            session,
            organization_id=org.id,
            name="resend-sandbox",
            config={
                "default_from": "Demo Shop <news@demo-shop.test>",
                "rate_limit_per_hour": limits.per_hour,
                "rate_limit_per_day": limits.per_day,
                "reserve_transactional_per_hour": DEMO_RESERVE_PER_HOUR,
            },
            api_key=SecretStr("re_demo_" + uuid.uuid4().hex),
            keyring=keyring,
            actor="demo",
        )
        for address in audience.pre_suppressed:
            suppress(session, org.id, address, SuppressionReason.UNSUBSCRIBED, source="demo")
        task = Task(id=uuid.uuid4(), organization_id=org.id, name="Spring campaign", status="running")
        session.add(task)
    return _Campaign(org.id, connector.id, task.id, limits)


def _show_progress(
    factory: sessionmaker[Session],
    task_id: uuid.UUID,
    total: int,
    console: Console,
    children: list[processes.Child],
) -> None:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        sends = progress.add_task("emails with a send result", total=total)
        hooks = progress.add_task("webhook events processed", total=None)
        for ledger, events in _settle(factory, task_id, children):
            progress.update(sends, completed=total - sum(ledger.get(s, 0) for s in report.STILL_MOVING))
            progress.update(hooks, completed=events["processed"], total=max(events["stored"], 1))


def _settle(
    factory: sessionmaker[Session], task_id: uuid.UUID, children: list[processes.Child]
) -> Iterator[tuple[dict[str, int], dict[str, int]]]:
    """Poll until nothing is in flight and nothing changed for a quiet period (or time runs out)."""
    deadline, last, quiet_since = time.monotonic() + SETTLE_TIMEOUT_S, None, time.monotonic()
    while time.monotonic() < deadline:
        _check_alive(children)
        with factory() as session:
            ledger, events = count_by_status(session, task_id=task_id), report.webhook_counts(session)
        yield ledger, events
        snapshot = (sorted(ledger.items()), events["stored"], events["processed"])
        if snapshot != last:
            last, quiet_since = snapshot, time.monotonic()
        in_flight = sum(ledger.get(s, 0) for s in report.STILL_MOVING) + events["waiting"]
        if sum(ledger.values()) and not in_flight and time.monotonic() - quiet_since >= QUIET_PERIOD_S:
            return
        time.sleep(0.5)


def _check_alive(children: list[processes.Child]) -> None:
    for child in children:
        if not child.alive():
            raise DemoError(f"{child.name} stopped unexpectedly:\n{child.log_tail()}")


def _send_follow_up(
    factory: sessionmaker[Session],
    broker: TaskProducer,
    demo: _Campaign,
    audience: campaign.Audience,
    console: Console,
    children: list[processes.Child],
) -> dict[str, int]:
    """Send again to every bounced and complained address: all must be skipped as suppressed."""
    targets = [*audience.bounced, *audience.complained]
    with transaction(factory) as session:
        follow_up = Task(
            id=uuid.uuid4(), organization_id=demo.organization_id, name="Follow-up", status="running"
        )
        session.add(follow_up)
    campaign.enqueue_batches(
        broker,
        connector_id=demo.connector_id,
        organization_id=demo.organization_id,
        task_id=follow_up.id,
        recipients=targets,
    )
    console.print(f"Follow-up to the {len(targets)} bounced and complained addresses enqueued ...")
    latest: dict[str, int] = {}
    for ledger, _events in _settle(factory, follow_up.id, children):
        latest = ledger
    return {"sent_to": len(targets), "suppressed": latest.get("suppressed", 0)}


def _send_after_the_guard(
    factory: sessionmaker[Session],
    broker: TaskProducer,
    demo: _Campaign,
    console: Console,
    children: list[processes.Child],
) -> dict[str, dict[str, int]]:
    """A newsletter (bulk) and a receipt (transactional) after the campaign: with the organization
    paused by the reputation guard, the newsletter waits and the receipt goes."""
    with transaction(factory) as session:
        newsletter = Task(id=uuid.uuid4(), organization_id=demo.organization_id, name="Newsletter")
        receipt = Task(id=uuid.uuid4(), organization_id=demo.organization_id, name="Receipt")
        session.add_all([newsletter, receipt])
    # New readers: the campaign's own may have left its topic in one click since.
    readers = [f"subscriber{n:03d}@example.com" for n in range(NEWSLETTER_READERS)]
    campaign.enqueue_batches(
        broker,
        connector_id=demo.connector_id,
        organization_id=demo.organization_id,
        task_id=newsletter.id,
        recipients=readers,
    )
    publish(
        broker,
        task_names.SEND_EMAIL,
        kwargs={
            "connector_id": str(demo.connector_id),
            "task_id": str(receipt.id),
            "to": readers[0],
            "subject": "Your receipt",
            "html": "<p>Thanks for your order.</p>",
            "priority": Priority.TRANSACTIONAL.value,
            "outcomes_queue": campaign.OUTCOMES_QUEUE,
        },
    )
    console.print(f"A newsletter to {len(readers)} readers and one receipt enqueued after the campaign ...")
    ledgers = {}
    for name, task_id in (("newsletter", newsletter.id), ("receipt", receipt.id)):
        latest: dict[str, int] = {}
        for ledger, _events in _settle(factory, task_id, children):
            latest = ledger
        ledgers[name] = latest
    with factory() as session:
        ledgers["newsletter_held_by_guard"] = {
            MessageStatus.DEFERRED.value: guard.held_rows(session, task_id=newsletter.id)
        }
    return ledgers
