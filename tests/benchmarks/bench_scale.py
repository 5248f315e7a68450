"""The project's hot statements against a large ledger: how their cost grows with the table.

Loads ``--rows`` ledger rows (default 1,000,000) by set-based SQL into a database of its own: 1,000
organizations, one with 30 % of the traffic and a 100,000-recipient campaign; a metric row per sent
email and a stored webhook event per two. Then times (median of ``--repeat``) the statements a send,
an event and an operator run, and beat's rewrite of the ledger's daily rollups over every row, and
prints bytes per email, and index entries and WAL per email of the ledger over the life of a thousand
more. ``--rows 1000000,5000000`` loads and times
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import fakeredis
import httpx
import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

from shared import migrations
from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import OPEN_STATUSES, Priority, WebhookEvent
from shared.partitions import ledger_rollups
from shared.partitions import maintenance as partition_maintenance
from shared.partitions.periods import Grain
from shared.rate_limit import RateLimiter
from shared.sending import ledger, queue
from shared.sending.context import SendContext
from shared.sending.ledger import Placement
from shared.sending.rendering import RenderedMessage, chunk_key, message_id_for
from shared.settings import load_settings
from shared.webhook_events import event_backlog, reopen_for_replay
from tests.conftest import create_database, drop_database
from tests.send_helpers import RecordingScheduler
from worker.beat import maintenance
from worker.events.processing import process_event, process_events

ORGANIZATIONS = 1000
CAMPAIGN = 100_000
#: The big organization's API key (its dispatch key); the others share nine more.
BIG_KEY = "b" * 20
#: Rows among which 3 % wait (queued, deferred, sending): a backlog of 30,000 rows at any size.
BACKLOG_SPAN = 1_000_000

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
# ORGANIZATIONS); 96 % delivered, 1 % failed; 1 % each queued, deferred and sending among the first
# BACKLOG_SPAN rows only (the rest delivered): the waiting backlog stays the same whatever the history.
# Rows that went out carry their unit's key (a batch's, about 100 rows of the big organization's or
# 70 of another's).
_MESSAGES = """
INSERT INTO email_messages (organization_id, connector_id, task_id, idempotency_key, recipient, status,
    resend_email_id, sent_at, created_at, dispatch_key, next_attempt_at, priority, attempts, attempt_key)
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
       CASE WHEN g % 10 = 7 THEN 'transactional' ELSE 'bulk' END,
       CASE WHEN s.status IN ('queued', 'deferred') THEN 0 ELSE 1 END,
       CASE WHEN s.status NOT IN ('queued', 'deferred')
            THEN 'pilot-batch/' || md5(u.unit) || md5(u.unit || '/') END
FROM generate_series(0, :rows - 1) AS g,
     LATERAL (SELECT CASE WHEN g % 10 < 3 THEN 0 ELSE 1 + g % (:orgs - 1) END AS o) AS org,
     LATERAL (SELECT CASE WHEN g % 100 = 3 THEN 'failed' WHEN g >= :backlog_span THEN 'delivered'
                          WHEN g % 100 = 0 THEN 'queued' WHEN g % 100 = 1 THEN 'deferred'
                          WHEN g % 100 = 2 THEN 'sending' ELSE 'delivered' END AS status) AS s,
     LATERAL (SELECT o || '/' || CASE WHEN o = 0 THEN g / 333 ELSE g / 100000 END AS unit) AS u
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
        params = {
            "orgs": ORGANIZATIONS,
            "rows": rows,
            "campaign": CAMPAIGN,
            "big_key": BIG_KEY,
            "backlog_span": BACKLOG_SPAN,
        }
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
            ledger.count_waiting(session)
            ledger.sent_since(session, now - timedelta(hours=24))
            ledger_rollups.totals(session, now.date() - timedelta(days=7), now.date() - timedelta(days=1))
            event_backlog(session)

    flying = [row[0] for row in raw.execute(_FLYING, {"key": BIG_KEY}).fetchall()]

    def answer() -> None:
        sent = [queue.Answer(message_id, "sent", email_id=f"bench-{message_id}") for message_id in flying]
        with raw.transaction(force_rollback=True):
            queue.record_answer(raw, sent, at=now, usage={big_connector: len(sent)})

    answered = timed(repeat, answer)
    raw.execute(f"ALTER TABLE email_messages DISABLE TRIGGER {FINAL_ROW_TRIGGER}")
    answered_without = timed(repeat, answer)
    raw.execute(f"ALTER TABLE email_messages ENABLE TRIGGER {FINAL_ROW_TRIGGER}")
    figures = {
        "send claim (100 rows of the big key)": timed(repeat, claim),
        "record a unit of 100 answered sent": answered,
        "the same without the final-row trigger": answered_without,
        "a batch of 100 into the 100k campaign": timed(repeat, batch_into(ORGANIZATIONS)),
        "a batch of 100 into a small task": timed(repeat, batch_into(1)),
        "parked_ahead (big connector)": timed(repeat, parked_ahead),
        "recent_usage (budget rebuild, big connector)": timed(repeat, recent_usage),
        "pilot status (waiting, 24 h, 7-day totals, events)": timed(repeat, status),
        **campaign_events(url, repeat),
    }
    raw.close()
    engine.dispose()
    return figures


#: Clears the queue of a row that becomes final (migration 0019); timed with and without.
FINAL_ROW_TRIGGER = "email_messages_final_row_leaves_queue"
_FLYING = "SELECT id FROM email_messages WHERE dispatch_key = %(key)s AND status = 'sending' LIMIT 100"


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


def beat_statements(url: str, repeat: int, as_of: datetime) -> dict[str, float]:
    """Beat's housekeeping of the waiting rows and the orphan selection of ``events replay``, as of
    ``as_of`` (the start of the load: nothing due, nothing stuck), so each run looks and changes nothing."""
    engine = make_engine(load_settings(database_url=url))
    factory = make_sessionmaker(engine)
    settings = load_settings(database_url=url, resend_api_key="re_bench_scale")
    ctx = SendContext(
        settings=settings,
        engine=engine,
        limiter=RateLimiter(fakeredis.FakeRedis()),
        http=httpx.Client(),
        scheduler=RecordingScheduler(),
    )

    def orphans() -> None:
        with factory() as session:
            reopen_for_replay(session, orphans=True)
            session.rollback()

    figures = {
        "release deferred and scheduled (beat)": timed(
            repeat,
            lambda: (
                maintenance.release_deferred(factory, ctx, now=as_of),
                maintenance.release_scheduled(factory, ctx, now=as_of),
            ),
        ),
        "sweep (beat)": timed(repeat, lambda: maintenance.sweep(factory, ctx, now=as_of)),
        "reconcile (beat)": timed(repeat, lambda: maintenance.reconcile(factory, ctx, now=as_of)),
        "events replay --orphans (selection)": timed(repeat, orphans),
    }
    ctx.close()
    return figures


def ledger_rollup(url: str, repeat: int, as_of: datetime) -> dict[str, float]:
    """A rewrite of the rollups of the UTC days the rows were created on (the 24 hours before the
    load ``as_of``: every row), as beat's nightly job and retention's last rewrite run it."""
    engine = make_engine(load_settings(database_url=url))
    first = Grain.DAY.start_of(as_of - timedelta(days=1))
    end = Grain.DAY.after(Grain.DAY.start_of(as_of))

    def roll_up() -> None:
        with engine.begin() as connection:
            ledger_rollups.roll_up_ledger(connection, first, end)

    figures = {"ledger rollup of every row's day (beat, nightly)": timed(repeat, roll_up)}
    with engine.connect() as connection:
        brin = connection.execute(
            text(
                # The ledger's index is partitioned: its size is its partitions' indexes'.
                "SELECT sum(pg_relation_size(relid))"
                " FROM pg_partition_tree('ix_email_messages_created_at_brin') WHERE isleaf"
            )
        )
        rollups = connection.execute(text("SELECT count(*) FROM ledger_rollups"))
        print(f"== ledger rollups: {rollups.scalar_one():,} rows; BRIN index {brin.scalar_one():,} bytes")
    engine.dispose()
    return figures


#: Emails taken through their life (queued, sending, sent, delivered) to measure what one costs in WAL.
LIFECYCLE_EMAILS = 1000
#: Their API key: a queue of their own, so the claims take exactly them.
LIFECYCLE_KEY = "w" * 20
# The ledger's partitions and their indexes, each named as the ledger (or its index) it belongs to.
_LEDGER_RELATIONS = """
WITH ledger AS (
    SELECT CAST('email_messages' AS regclass) AS oid
    UNION ALL SELECT inhrelid FROM pg_inherits WHERE inhparent = 'email_messages'::regclass
), relations AS (
    SELECT oid FROM ledger
    UNION ALL SELECT indexrelid FROM pg_index WHERE indrelid IN (SELECT oid FROM ledger)
)
SELECT c.relfilenode, coalesce(parent.relname, c.relname)
FROM relations r JOIN pg_class c ON c.oid = r.oid
LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
LEFT JOIN pg_class parent ON parent.oid = i.inhparent
WHERE c.relfilenode <> 0
"""
# Each WAL record with the ledger relation it touches first (``rel tablespace/database/relfilenode``).
_WAL_RECORDS = """
SELECT resource_manager, record_type, record_length, fpi_length,
       substring(block_ref from 'rel [0-9]+/[0-9]+/([0-9]+)')::oid AS relfilenode
FROM pg_get_wal_records_info(%(start)s, %(end)s)
WHERE block_ref LIKE %(database)s
"""
_UPDATES = "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'email_messages'::regclass"
#: B-tree records that add an entry to an index (a split carries the entry that caused it).
_ENTRY_RECORDS = {"INSERT_LEAF", "INSERT_POST", "SPLIT_L", "SPLIT_R"}


def write_amplification(url: str) -> dict[str, float]:
    """Index entries and WAL bytes per email of the ledger over :data:`LIFECYCLE_EMAILS` emails taken
    through the send path's own statements (recorded, claimed, sent, answered) and a delivery event's
    status write, from a checkpoint (so each page's first change carries its full image, as after any
    checkpoint); read back with ``pg_walinspect`` after each batch (before a busy server recycles the
    segments), counting only this database's ledger relations."""
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    engine = make_engine(load_settings(database_url=url))
    raw = psycopg.connect(conninfo, autocommit=True)
    raw.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
    relations: dict[int, str] = dict(raw.execute(_LEDGER_RELATIONS).fetchall())
    database = raw.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()
    assert database is not None
    owner = org(1, "organization")
    raw.execute("CHECKPOINT")
    updates_before = raw.execute(_UPDATES).fetchone()
    records: list[tuple[Any, ...]] = []
    for batch in range(LIFECYCLE_EMAILS // 100):
        start = raw.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
        keys = [f"life/{batch}/{n}" for n in range(100)]
        messages = [
            RenderedMessage(message_id_for(key), key, f"n{n}@example.test", "Hi", {"to": ["x"]})
            for n, key in enumerate(keys)
        ]
        with Session(engine) as session:
            ledger.insert_messages(
                session,
                messages,
                organization_id=owner,
                connector_id=org(1, "connector"),
                task_id=org(1, "task"),
                placement=Placement(LIFECYCLE_KEY, priority=Priority.BULK),
            )
            session.commit()
        now = datetime.now(UTC)
        with raw.transaction():
            found = queue.claim(raw, LIFECYCLE_KEY, limit=100, now=now, orphaned_after=300)
            ids = [message_id for message_id, _ in found.rows]
            changes = [queue.RowChange(message_id, "sending", attempt=1) for message_id in ids]
            queue.write_attempt(raw, changes, unit=chunk_key(keys))  # a batch's real unit key
        answers = [queue.Answer(message_id, "sent", email_id=f"life-{message_id}") for message_id in ids]
        queue.record_answer(raw, answers, at=now, usage={org(1, "connector"): len(ids)})
        # What applying the delivery event writes to the ledger row.
        raw.execute(
            "UPDATE email_messages SET status = 'delivered', updated_at = now() WHERE id = ANY(%s)", (ids,)
        )
        end = raw.execute("SELECT pg_current_wal_flush_lsn()").fetchone()  # what pg_walinspect may read
        assert start is not None and end is not None
        bounds = {"start": start[0], "end": end[0], "database": f"%rel %/{database[0]}/%"}
        records += raw.execute(_WAL_RECORDS, bounds).fetchall()
    engine.dispose()
    raw.execute("SELECT pg_stat_force_next_flush()")  # this session's counts, at its next idle
    raw.close()
    with psycopg.connect(conninfo, autocommit=True) as reader:
        updates_after = reader.execute(_UPDATES).fetchone()
    assert updates_before is not None and updates_after is not None
    figures: dict[str, float] = {
        "row updates": updates_after[0] - updates_before[0],
        "HOT row updates": updates_after[1] - updates_before[1],
        "WAL bytes": 0,
        "WAL bytes without full-page images": 0,
        "index entries": 0,
    }
    for manager, kind, length, fpi, node in records:
        if node not in relations:
            continue  # another table's, or the TOAST table's
        figures["WAL bytes"] += length
        figures["WAL bytes without full-page images"] += length - fpi
        if manager == "Btree" and kind in _ENTRY_RECORDS:
            figures["index entries"] += 1
            label = f"index entries in {relations[node]}"
            figures[label] = figures.get(label, 0) + 1
    return {label: value / LIFECYCLE_EMAILS for label, value in figures.items()}


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


#: The tables whose rows are kept 13 months: where a kept email's bytes go, column by column.
BROKEN_DOWN = ("email_messages", "email_metrics")
_FINAL = "status NOT IN (" + ", ".join(f"'{status}'" for status in sorted(OPEN_STATUSES)) + ")"
_INDEXES = """
SELECT i.relname, coalesce((SELECT sum(pg_relation_size(relid)) FROM pg_partition_tree(i.oid)),
                           pg_relation_size(i.oid))
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = CAST(:t AS regclass) ORDER BY 2 DESC
"""
_PARTS = """
SELECT coalesce(sum(pg_relation_size(relid)), pg_relation_size(CAST(:t AS regclass))),
       coalesce(sum(pg_total_relation_size(relid) - pg_relation_size(relid) - pg_indexes_size(relid)),
                pg_total_relation_size(CAST(:t AS regclass)) - pg_relation_size(CAST(:t AS regclass))
                - pg_indexes_size(CAST(:t AS regclass)))
FROM pg_partition_tree(CAST(:t AS regclass)) WHERE isleaf
"""
_COLUMNS = (
    "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) AND attnum > 0"
    " AND NOT attisdropped ORDER BY attnum"
)


def breakdown(url: str, rows: int) -> dict[str, dict[str, float]]:
    """Per table of :data:`BROKEN_DOWN`, per email: the heap, its TOAST and maps, each index, and
    each column's average stored size (``pg_column_size``, a null 0) over its final rows."""
    engine = make_engine(load_settings(database_url=url))
    figures: dict[str, dict[str, float]] = {}
    with engine.connect() as connection:
        for table in BROKEN_DOWN:
            heap, toast = connection.execute(text(_PARTS), {"t": table}).one()
            parts = {"heap": heap / rows, "toast and maps": toast / rows}
            for index, size in connection.execute(text(_INDEXES), {"t": table}):
                parts[f"index {index}"] = size / rows
            columns = list(connection.scalars(text(_COLUMNS), {"t": table}))
            final = _FINAL if table == "email_messages" else "true"
            averages = ", ".join(f"avg(coalesce(pg_column_size({name}), 0))" for name in columns)
            found = connection.execute(
                text(f"SELECT avg(pg_column_size(t.*)), {averages} FROM {table} t WHERE {final}")
            ).one()
            parts["row datum (header and columns)"] = float(found[0] or 0)
            for name, size in zip(columns, found[1:], strict=True):
                parts[f"column {name}"] = float(size or 0)
            figures[table] = parts
    engine.dispose()
    return figures


def lifecycle_columns(url: str) -> dict[str, float]:
    """Each ledger column's average stored size over the :data:`LIFECYCLE_EMAILS` rows the send
    path's own statements took to ``delivered``: what a final row holds, to hold the generator to."""
    engine = make_engine(load_settings(database_url=url))
    with engine.connect() as connection:
        columns = list(connection.scalars(text(_COLUMNS), {"t": "email_messages"}))
        averages = ", ".join(f"avg(coalesce(pg_column_size({name}), 0))" for name in columns)
        found = connection.execute(
            text(
                f"SELECT avg(pg_column_size(t.*)), {averages} FROM email_messages t"
                " WHERE idempotency_key LIKE 'life/%'"
            )
        ).one()
    engine.dispose()
    return {"row datum (header and columns)": float(found[0] or 0)} | {
        f"column {name}": float(size or 0) for name, size in zip(columns, found[1:], strict=True)
    }


def print_breakdown(title: str, figures: dict[str, dict[str, float]]) -> None:
    print(f"== {title}")
    for table, parts in figures.items():
        for label, size in parts.items():
            print(f"{table + ' ' + label:>72s}: {size:7.1f}")


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
        started, as_of = time.monotonic(), datetime.now(UTC)
        load(url, rows)
        print(f"== {rows:,} ledger rows loaded in {time.monotonic() - started:.0f} s")
        rollup = ledger_rollup(url, repeat, as_of)
        figures = hot_statements(url, repeat) | beat_statements(url, repeat, as_of) | rollup
        sizes = bytes_per_email(url, rows)
        for label, ms in figures.items():
            print(f"{label:>52s}: {ms:9.1f} ms")
        for table, per_email in sizes.items():
            print(f"{table + ' bytes per email':>52s}: {per_email:9.0f}")
        print(f"{'all tables, bytes per email':>52s}: {sum(sizes.values()):9.0f}", flush=True)
        amplification = write_amplification(url)
        lifecycle = lifecycle_columns(url)
        retained = after_retention(url, rows)
        parts = breakdown(url, rows)
    finally:
        drop_database(name)
    for table, per_email in retained.items():
        print(f"{table + ' bytes per email after retention':>52s}: {per_email:9.0f}")
    print(f"{'all tables, bytes per email after retention':>52s}: {sum(retained.values()):9.0f}")
    print_breakdown("bytes per email after retention: heap, indexes; columns: average over final rows", parts)
    print_breakdown(
        f"the {LIFECYCLE_EMAILS} rows the send path took to delivered: columns", {"email_messages": lifecycle}
    )
    print(f"== the ledger's writes per email ({LIFECYCLE_EMAILS} emails: queued, sending, sent, delivered)")
    for label, per_email in amplification.items():
        print(f"{label:>52s}: {per_email:9.1f}" if len(label) <= 52 else f"{per_email:9.1f}  {label}")
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
