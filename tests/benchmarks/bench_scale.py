"""The project's hot statements against a large ledger: how their cost grows with the table.

Loads ``--rows`` ledger rows (default 1,000,000) by set-based SQL into a database of its own: 1,000
organizations, one with 30 % of the traffic and a 100,000-recipient campaign; a metric row per sent
email and a stored webhook event per two. Then times (median of ``--repeat``) the statements a send,
an event and an operator run, and prints bytes per email. ``--rows 1000000,5000000`` loads and times
each size in turn and prints the ratio of the largest to the smallest.

    .venv/bin/python tests/benchmarks/bench_scale.py [--rows 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

from shared import migrations
from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import Priority, WebhookEvent
from shared.partitions import maintenance as partition_maintenance
from shared.sending import ledger, queue
from shared.sending.ledger import Placement
from shared.sending.rendering import RenderedMessage, message_id_for
from shared.settings import load_settings
from shared.webhook_events import event_counts
from tests.conftest import create_database, drop_database
from worker.events.processing import process_event, process_events

ORGANIZATIONS = 1000
CAMPAIGN = 100_000
#: The big organization's API key (its dispatch key); the others share nine more.
BIG_KEY = "b" * 20

_LOAD = """
INSERT INTO organizations (id, name)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(o), 12, '0'))::uuid, 'scale-' || o
FROM generate_series(0, :orgs - 1) AS o;
INSERT INTO connectors (id, organization_id, name)
SELECT ('00000000-0000-4000-9000-' || lpad(to_hex(o), 12, '0'))::uuid,
       ('00000000-0000-4000-8000-' || lpad(to_hex(o), 12, '0'))::uuid, 'scale'
FROM generate_series(0, :orgs - 1) AS o;
INSERT INTO tasks (id, organization_id, name)
SELECT ('00000000-0000-4000-a000-' || lpad(to_hex(o), 12, '0'))::uuid,
       ('00000000-0000-4000-8000-' || lpad(to_hex(o % :orgs), 12, '0'))::uuid, 'campaign'
FROM generate_series(0, :orgs) AS o;
"""
# Row g: the big organization (0) for 3 rows in 10, its first CAMPAIGN rows in its campaign (task
# ORGANIZATIONS); 96 % delivered, the rest queued, deferred, sending or failed.
_MESSAGES = """
INSERT INTO email_messages (organization_id, connector_id, task_id, idempotency_key, recipient, status,
    resend_email_id, sent_at, created_at, dispatch_key, next_attempt_at, priority)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(o), 12, '0'))::uuid,
       ('00000000-0000-4000-9000-' || lpad(to_hex(o), 12, '0'))::uuid,
       ('00000000-0000-4000-a000-' || lpad(to_hex(CASE WHEN o = 0 AND g < :campaign * 10 / 3
                                                   THEN :orgs ELSE o END), 12, '0'))::uuid,
       'scale/' || g, 'reader' || (g % 200000) || '@example.test', s.status,
       CASE WHEN s.status IN ('delivered', 'sending') THEN 'scale-' || g END,
       CASE WHEN s.status = 'delivered' THEN now() - make_interval(secs => g % 86400) END,
       now() - make_interval(secs => g % 86400),
       CASE WHEN o = 0 THEN :big_key ELSE lpad(to_hex(o % 9), 20, 'a') END,
       CASE WHEN s.status = 'deferred' THEN now() + make_interval(secs => g % 3600)
            WHEN s.status = 'sending' THEN now() - interval '1 minute' END,
       CASE WHEN g % 10 = 7 THEN 'transactional' ELSE 'bulk' END
FROM generate_series(0, :rows - 1) AS g,
     LATERAL (SELECT CASE WHEN g % 10 < 3 THEN 0 ELSE 1 + g % (:orgs - 1) END AS o) AS org,
     LATERAL (SELECT CASE g % 100 WHEN 0 THEN 'queued' WHEN 1 THEN 'deferred' WHEN 2 THEN 'sending'
                                  WHEN 3 THEN 'failed' ELSE 'delivered' END AS status) AS s
"""
# Each row's stored request body, kept apart (email_requests) by the day it was stored.
_REQUESTS = """
INSERT INTO email_requests (message_id, stored_at, request)
SELECT id, created_at,
       jsonb_build_object('from', 'News <news@example.test>', 'to', jsonb_build_array(recipient),
                          'subject', 'Spring offers', 'html', repeat('<p>Hello</p>', 40))
FROM email_messages
"""
_METRICS = """
INSERT INTO email_metrics (message_id, task_id, connector_id, event, recipient, status, metadata, occurred_at)
SELECT id, task_id, connector_id, 'delivered', recipient, 'delivered', '{}'::jsonb, sent_at
FROM email_messages WHERE status = 'delivered'
"""
_EVENTS = """
INSERT INTO webhook_events (svix_id, type, payload, processed_at, occurred_at)
SELECT 'msg_' || g, 'email.delivered',
       jsonb_build_object('type', 'email.delivered', 'data', jsonb_build_object('email_id', 'scale-' || g)),
       now(), now() - make_interval(secs => g % 86400)
FROM generate_series(0, :rows / 2 - 1) AS g
"""
TABLES = ("email_messages", "email_requests", "email_metrics", "webhook_events")


def load(url: str, rows: int) -> None:
    settings = load_settings(database_url=url)
    engine = make_engine(settings)
    # The rows span the last 24 hours: yesterday's partitions, as beat would have made them.
    partition_maintenance.maintain(engine, settings, now=datetime.now(UTC) - timedelta(days=1))
    with engine.connect() as connection:
        params = {"orgs": ORGANIZATIONS, "rows": rows, "campaign": CAMPAIGN, "big_key": BIG_KEY}
        for statement in _LOAD.split(";"):
            if statement.strip():
                connection.execute(text(statement), params)
        for statement in (_MESSAGES, _REQUESTS, _METRICS, _EVENTS):
            connection.execute(text(statement), params)
        connection.commit()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in TABLES:
            connection.execute(text(f"VACUUM ANALYZE {table}"))
    engine.dispose()


def org(number: int, kind: str) -> uuid.UUID:
    prefix = {"organization": "8000", "connector": "9000", "task": "a000"}[kind]
    return uuid.UUID(f"00000000-0000-4000-{prefix}-{number:012x}")


def timed(repeat: int, run: Callable[[], object]) -> float:
    """Median milliseconds of ``run`` over ``repeat`` runs (after one warm-up)."""
    run()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def hot_statements(url: str, repeat: int) -> dict[str, float]:
    engine = make_engine(load_settings(database_url=url))
    factory = make_sessionmaker(engine)
    raw = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    now = datetime.now(UTC)
    big_connector = org(0, "connector")

    def claim() -> None:
        with raw.transaction(force_rollback=True):
            found = queue.claim(raw, BIG_KEY, limit=100, now=now, orphaned_after=5)
            queue.read_claimed(raw, [message_id for message_id, _ in found.rows], now=now)
        queue.unlock_all(raw)

    def batch_into(task_number: int) -> Callable[[], None]:
        def run() -> None:
            with Session(engine) as session:
                keys = [f"bench/{uuid.uuid4()}" for _ in range(100)]
                messages = [
                    RenderedMessage(message_id_for(key), key, f"n{n}@example.test", "Hi", {"to": ["x"]})
                    for n, key in enumerate(keys)
                ]
                task_id = org(task_number, "task")
                owner = 0 if task_number == ORGANIZATIONS else task_number
                ledger.insert_messages(
                    session,
                    messages,
                    organization_id=org(owner, "organization"),
                    connector_id=org(owner, "connector"),
                    task_id=task_id,
                    placement=Placement(BIG_KEY, priority=Priority.BULK),
                )
                apply_task_counts(session)
                session.rollback()

        return run

    def parked_ahead() -> None:
        queue.parked_ahead(raw, big_connector, now=now, priority=Priority.BULK)

    def recent_usage() -> None:
        with factory() as session:
            ledger.recent_usage(session, big_connector, now)

    def status() -> None:
        with factory() as session:
            ledger.count_by_status_and_priority(session)
            event_counts(session)

    figures = {
        "send claim (100 rows of the big key)": timed(repeat, claim),
        "a batch of 100 into the 100k campaign": timed(repeat, batch_into(ORGANIZATIONS)),
        "a batch of 100 into a small task": timed(repeat, batch_into(1)),
        "parked_ahead (big connector)": timed(repeat, parked_ahead),
        "recent_usage (budget rebuild, big connector)": timed(repeat, recent_usage),
        "pilot status (ledger by status and class, events)": timed(repeat, status),
        **campaign_events(url, repeat),
    }
    raw.close()
    engine.dispose()
    return figures


def apply_task_counts(session: Session) -> None:
    """Add the transaction's ledger changes to its tasks now, as its commit would."""
    session.execute(text("SET CONSTRAINTS email_messages_task_sends_apply_insert IMMEDIATE"))


def campaign_events(url: str, repeat: int) -> dict[str, float]:
    """One webhook event, and a batch of 100, of the 100k campaign's delivered emails (committed)."""
    engine = make_engine(load_settings(database_url=url))
    factory = make_sessionmaker(engine)
    # Campaign rows are g with g % 10 < 3 below CAMPAIGN * 10 / 3; g % 100 >= 4 were delivered.
    delivered = (g for g in range(CAMPAIGN * 10 // 3) if g % 10 < 3 and g % 100 >= 4)
    runs = repeat + 1

    def stored(count: int) -> list[uuid.UUID]:
        payloads = [
            {
                "type": "email.opened",
                "created_at": "2026-11-01T12:00:00.000Z",
                "data": {"email_id": f"scale-{next(delivered)}", "to": ["reader@example.test"]},
            }
            for _ in range(count)
        ]
        with transaction(factory) as session:
            events = [
                WebhookEvent(svix_id=f"bench_{uuid.uuid4().hex}", type="email.opened", payload=payload)
                for payload in payloads
            ]
            session.add_all(events)
            session.flush()
            return [event.id for event in events]

    singles, batches = iter(stored(runs)), iter([stored(100) for _ in range(runs)])
    figures = {
        "one event of the 100k campaign": timed(repeat, lambda: process_event(factory, next(singles))),
        "a batch of 100 events of the 100k campaign": timed(
            repeat, lambda: process_events(factory, next(batches))
        ),
    }
    engine.dispose()
    return figures


def bytes_per_email(url: str, rows: int) -> dict[str, float]:
    engine = make_engine(load_settings(database_url=url))
    with engine.connect() as connection:
        # A partitioned table's size is its partitions' (pg_partition_tree lists nothing for a plain one).
        sizes = {
            table: connection.execute(
                text(
                    "SELECT coalesce(sum(pg_total_relation_size(relid)), pg_total_relation_size(:t))"
                    " FROM pg_partition_tree(:t)"
                ),
                {"t": table},
            ).scalar_one()
            for table in TABLES
        }
    engine.dispose()
    return {table: size / rows for table, size in sizes.items()}


def after_retention(url: str, rows: int) -> dict[str, float]:
    """Bytes per email once beat's retention has run, as of when every kept body has expired (the
    webhook bodies' retention after the load); the ledger and metrics stay 13 months."""
    settings = load_settings(database_url=url)
    engine = make_engine(settings)
    later = datetime.now(UTC) + timedelta(days=settings.pilot_webhook_body_retention_days + 2)
    report = partition_maintenance.maintain(engine, settings, now=later)
    engine.dispose()
    print(f"== retention as of {later:%Y-%m-%d}: {len(report.dropped)} partitions dropped")
    return bytes_per_email(url, rows)


def measure(rows: int, repeat: int) -> tuple[dict[str, float], dict[str, float]]:
    name = f"pilot_bench_scale_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        migrations.upgrade(url)
        started = time.monotonic()
        load(url, rows)
        print(f"== {rows:,} ledger rows loaded in {time.monotonic() - started:.0f} s")
        figures = hot_statements(url, repeat)
        sizes = bytes_per_email(url, rows)
        retained = after_retention(url, rows)
    finally:
        drop_database(name)
    for label, ms in figures.items():
        print(f"{label:>52s}: {ms:9.1f} ms")
    for table, per_email in sizes.items():
        print(f"{table + ' bytes per email':>52s}: {per_email:9.0f}")
    print(f"{'all tables, bytes per email':>52s}: {sum(sizes.values()):9.0f}")
    for table, per_email in retained.items():
        print(f"{table + ' bytes per email after retention':>52s}: {per_email:9.0f}")
    print(f"{'all tables, bytes per email after retention':>52s}: {sum(retained.values()):9.0f}")
    return figures, sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1000000", help="ledger rows; several sizes comma-separated")
    parser.add_argument("--repeat", type=int, default=5, help="runs per statement (median)")
    options = parser.parse_args()
    sizes = [int(value) for value in options.rows.split(",")]
    results: dict[int, dict[str, float]] = {}
    for rows in sizes:
        results[rows] = measure(rows, options.repeat)[0]
    if len(sizes) > 1:
        small, large = results[min(sizes)], results[max(sizes)]
        print(f"== {max(sizes):,} / {min(sizes):,} rows")
        for label in small:
            print(f"{label:>52s}: {large[label] / small[label]:9.2f}x")


if __name__ == "__main__":
    main()
