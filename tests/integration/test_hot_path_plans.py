"""The hot statements read the index meant for them, never the whole ledger, on a ledger of real size.

A module database holds 100,000 delivered rows (10 campaigns) with their metrics, a backlog of
waiting rows (queued, deferred, sending, scheduled) in the queues of 20 API keys, and 20,000 stored
webhook events, analyzed; a request body for every row and an outbox of outcome events are loaded for
the tests that read them. The real functions run; the statements they send are explained as the
planner would run them (``EXPLAIN (FORMAT JSON)``, nothing forced). Each index and the statements it
serves: docs/architecture.md, "Indexes".
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from shared.db import make_engine, make_sessionmaker
from shared.models import Priority
from shared.outcome_publisher import MAX_EVENTS_PER_RUN, claim_events
from shared.rate_limit import RateLimiter
from shared.reputation.guard import held_rows
from shared.resend_events import EventType, TrackingEvent
from shared.sending import attachments, ledger, queue
from shared.sending.context import SendContext
from shared.sending.rendering import message_id_for
from shared.settings import load_settings
from shared.webhook_events import event_backlog, reopen_for_replay
from tests.conftest import create_database, drop_database
from tests.fake_resend import FakeResend
from tests.ledger_volume import LoadedLedger, analyze, load_ledger
from tests.query_plans import Plan, access_paths, partitions_folded, plans_of, raw_plans_of, walk
from tests.send_helpers import RecordingScheduler
from worker.beat import maintenance
from worker.events.processing import find_message

pytestmark = pytest.mark.integration

MESSAGES = 100_000
TASKS = 10
#: The API keys whose queues hold the backlog: ``KEY`` and 19 more.
KEYS = 20
KEY = "0" * 20
#: Before anything of the module's data was due or stale: beat's statements find nothing to change.
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
LEDGER = "email_messages"
#: The partial indexes of each waiting status: they hold that status's rows only.
PARTIAL = {
    "scheduled": {"ix_email_messages_scheduled"},
    "queued": {"ix_email_messages_dispatch_key_priority_queued", "ix_email_messages_queued_updated_at"},
    "deferred": {
        "ix_email_messages_deferred",
        "ix_email_messages_connector_id_priority_deferred",
        "ix_email_messages_dispatch_key_priority_deferred",
    },
    "sending": {"ix_email_messages_dispatch_key_sending", "ix_email_messages_connector_id_sending"},
}

_BACKLOG = """
INSERT INTO email_messages (id, organization_id, connector_id, idempotency_key, recipient, status,
    dispatch_key, priority, next_attempt_at, attempt_key, last_error)
SELECT gen_random_uuid(), :organization_id, :connector_id, 'backlog/' || g, 'waiting' || g || '@example.test',
       s.status, lpad((g % :keys)::text, 20, '0'),
       CASE WHEN g % 10 = 0 THEN 'transactional' ELSE 'bulk' END,
       CASE s.status WHEN 'deferred' THEN now() + make_interval(secs => g)
                     WHEN 'scheduled' THEN now() + make_interval(days => 1)
                     WHEN 'sending' THEN CASE WHEN g % 3 = 0 THEN now() - interval '1 minute' END END,
       CASE WHEN s.status = 'sending' THEN 'unit/' || (g / 10) END,
       CASE WHEN s.status = 'deferred' THEN 'connector budget spent' END
FROM generate_series(0, 5999) AS g,
     LATERAL (SELECT (ARRAY['queued', 'deferred', 'sending', 'scheduled'])[1 + g % 4] AS status) AS s
"""
_EVENTS = """
INSERT INTO webhook_events (svix_id, type, payload, processed_at, error)
SELECT 'plans_' || g, 'email.delivered', '{}'::jsonb, CASE WHEN g % 200 <> 0 THEN now() END,
       CASE WHEN g % 100 = 1 THEN 'orphan: no ledger row' END
FROM generate_series(0, 19999) AS g
"""


@pytest.fixture(scope="module")
def engine(template_database: str) -> Iterator[Engine]:
    name = f"pilot_test_hot_{uuid.uuid4().hex[:10]}"
    engine = make_engine(load_settings(database_url=create_database(name, template=template_database)))
    yield engine
    engine.dispose()
    drop_database(name)


@pytest.fixture(scope="module")
def volume(engine: Engine) -> LoadedLedger:
    with engine.connect() as connection:
        loaded = load_ledger(connection, messages=MESSAGES, tasks=TASKS)
        ids = {"organization_id": loaded.organization_id, "connector_id": loaded.connector_id}
        connection.execute(text(_BACKLOG), {**ids, "keys": KEYS})
        connection.execute(text(_EVENTS))
        connection.commit()
        analyze(connection)
        connection.execute(text("ANALYZE webhook_events"))
        connection.commit()
    return loaded


@pytest.fixture
def session(engine: Engine, volume: LoadedLedger) -> Iterator[Session]:
    with Session(engine) as session:
        yield session
        session.rollback()


@pytest.fixture
def conn(engine: Engine, volume: LoadedLedger) -> Iterator[psycopg.Connection[Any]]:
    url = engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as connection:
        yield connection
        queue.unlock_all(connection)


@pytest.fixture
def factory(engine: Engine, volume: LoadedLedger) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def ctx(engine: Engine, redis_prefix: str) -> Iterator[SendContext]:
    settings = load_settings(
        database_url=engine.url.render_as_string(hide_password=False), resend_api_key="re_plans_key"
    )
    context = SendContext(
        settings=settings,
        engine=engine,
        limiter=RateLimiter(fakeredis.FakeRedis(), key_prefix=redis_prefix),
        http=FakeResend().client(),
        scheduler=RecordingScheduler(),
    )
    yield context
    context.release()


LedgerReads = Callable[..., set[str]]


@pytest.fixture(scope="module")
def ledger_reads(engine: Engine, volume: LoadedLedger) -> LedgerReads:
    """How plans read the ledger: index names, or the node type of a read without one; a partition is
    read as the ledger (its index as the ledger's), and its empty partitions are left out."""
    with Session(engine) as session:
        partitions = session.scalars(
            text("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = to_regclass(:t)"),
            {"t": LEDGER},
        ).all()
        filled = {name for name in partitions if session.scalar(text(f"SELECT EXISTS (SELECT FROM {name})"))}
    assert filled  # the module's rows are in some partition

    def reads(*plans: Plan) -> set[str]:
        found = set()
        with Session(engine) as session:
            for plan in plans:
                for table, path in access_paths(plan):
                    if table == LEDGER:
                        found.add(path)
                    elif table in filled:
                        found |= {how for _, how in partitions_folded(session, {(table, path)})}
        return found

    return reads


def alone_row(volume: LoadedLedger) -> queue.AloneRow:
    key = f"plans/{uuid.uuid4()}"
    owner = (volume.organization_id, volume.connector_id)
    return queue.AloneRow(message_id_for(key), key, *owner, None, "x@example.test", "Hi", {})


def test_claim_reads_the_keys_queue_through_its_partial_indexes(
    ledger_reads: LedgerReads, conn: psycopg.Connection[Any]
) -> None:
    def claim(c: psycopg.Connection[Any]) -> None:
        with c.transaction(force_rollback=True):
            queue.claim(c, KEY, limit=100, now=datetime.now(UTC), orphaned_after=60)

    [plan] = raw_plans_of(conn, claim, matching=LEDGER)

    assert ledger_reads(plan) == {
        "ix_email_messages_dispatch_key_sending",
        "ix_email_messages_dispatch_key_priority_queued",
        "ix_email_messages_dispatch_key_priority_deferred",
        "pk_email_messages",
    }


def test_claim_alone_finds_a_taken_key_by_the_primary_key_and_the_queue_by_its_partial_indexes(
    ledger_reads: LedgerReads, conn: psycopg.Connection[Any], volume: LoadedLedger
) -> None:
    row = alone_row(volume)

    [plan] = raw_plans_of(
        conn, lambda c: queue.claim_alone(c, row, KEY, now=datetime.now(UTC)), matching=LEDGER
    )

    assert ledger_reads(plan) == {
        "pk_email_messages",
        "ix_email_messages_dispatch_key_priority_queued",
        "ix_email_messages_dispatch_key_priority_deferred",
        "ix_email_messages_dispatch_key_sending",
    }


def test_start_alone_keeps_a_key_once_through_the_primary_key(
    ledger_reads: LedgerReads, conn: psycopg.Connection[Any], volume: LoadedLedger
) -> None:
    row = alone_row(volume)

    def start(c: psycopg.Connection[Any]) -> None:
        with c.transaction(force_rollback=True):
            queue.start_alone(c, row, KEY)

    [plan] = raw_plans_of(conn, start, matching="INSERT INTO email_messages")

    [insert] = [node for node in walk(plan) if "Conflict Arbiter Indexes" in node]
    assert insert["Conflict Arbiter Indexes"] == ["pk_email_messages"]
    # The key looked for in every partition (its own month unknown), through each primary key.
    assert ledger_reads(plan) == {"pk_email_messages", "ModifyTable"}


def test_claim_unit_reads_the_unit_through_the_attempt_key_index(
    ledger_reads: LedgerReads, conn: psycopg.Connection[Any]
) -> None:
    [plan] = raw_plans_of(conn, lambda c: queue.claim_unit(c, "unit/42"), matching=LEDGER)

    assert ledger_reads(plan) == {"ix_email_messages_attempt_key_not_null"}


def test_parked_ahead_counts_through_the_connectors_deferred_index(
    ledger_reads: LedgerReads, conn: psycopg.Connection[Any], volume: LoadedLedger
) -> None:
    def parked(c: psycopg.Connection[Any]) -> None:
        queue.parked_ahead(c, volume.connector_id, now=datetime.now(UTC), priority=Priority.BULK)

    [plan] = raw_plans_of(conn, parked, matching=LEDGER)

    assert ledger_reads(plan) == {"ix_email_messages_connector_id_priority_deferred"}


def test_recent_usage_reads_hourly_usage_and_the_connectors_rows_in_flight(
    ledger_reads: LedgerReads, session: Session, volume: LoadedLedger
) -> None:
    usage, flying = plans_of(
        session, lambda: ledger.recent_usage(session, volume.connector_id, datetime.now(UTC)), matching="FROM"
    )

    assert access_paths(usage) == {("connector_usage", "pk_connector_usage")}
    assert ledger_reads(flying) == {"ix_email_messages_connector_id_sending"}


def test_pilot_status_counts_each_waiting_status_through_its_partial_index(
    ledger_reads: LedgerReads, session: Session
) -> None:
    plans = plans_of(session, lambda: ledger.count_waiting(session), matching=LEDGER)

    assert len(plans) == len(PARTIAL)
    for plan, status in zip(plans, PARTIAL, strict=True):
        assert ledger_reads(plan) and ledger_reads(plan) <= PARTIAL[status], status


def test_pilot_status_sums_recent_sends_from_each_connectors_hourly_usage(
    ledger_reads: LedgerReads, session: Session
) -> None:
    [plan] = plans_of(
        session, lambda: ledger.sent_since(session, datetime.now(UTC) - timedelta(hours=24)), matching="FROM"
    )

    assert ("connector_usage", "pk_connector_usage") in access_paths(plan)
    assert not ledger_reads(plan)


def test_pilot_status_counts_waiting_and_orphaned_events_through_their_partial_indexes(
    session: Session,
) -> None:
    waiting, orphaned = plans_of(session, lambda: event_backlog(session), matching="webhook_events")

    assert partitions_folded(session, access_paths(waiting)) == {
        ("webhook_events", "ix_webhook_events_unprocessed")
    }
    assert partitions_folded(session, access_paths(orphaned)) == {
        ("webhook_events", "ix_webhook_events_with_error")
    }


def test_replay_of_orphans_selects_them_through_the_events_with_error_index(session: Session) -> None:
    [plan] = plans_of(session, lambda: reopen_for_replay(session, orphans=True), matching="SELECT")

    assert partitions_folded(session, access_paths(plan)) == {
        ("webhook_events", "ix_webhook_events_with_error")
    }


def test_an_event_finds_its_row_through_the_email_id_index(
    ledger_reads: LedgerReads, session: Session
) -> None:
    event = TrackingEvent(
        type=EventType.DELIVERED, raw_type="email.delivered", email_id="volume-4242", recipient="x", tags={}
    )

    [plan] = plans_of(session, lambda: find_message(session, event), matching=LEDGER)

    assert ledger_reads(plan) == {"ix_email_messages_resend_email_id_not_null"}


@pytest.mark.parametrize(
    ("release", "index"),
    [
        (maintenance.release_deferred, "ix_email_messages_deferred"),
        (maintenance.release_scheduled, "ix_email_messages_scheduled"),
    ],
)
def test_release_reads_the_due_rows_through_their_status_time_index(
    ledger_reads: LedgerReads,
    session: Session,
    factory: sessionmaker[Session],
    ctx: SendContext,
    release: Any,
    index: str,
) -> None:
    [plan] = plans_of(session, lambda: release(factory, ctx, now=LONG_AGO), matching="FOR UPDATE")

    assert ledger_reads(plan) == {index}


def test_sweep_reads_stale_queued_rows_through_the_queued_age_index(
    ledger_reads: LedgerReads, session: Session, factory: sessionmaker[Session], ctx: SendContext
) -> None:
    plans = plans_of(session, lambda: maintenance.sweep(factory, ctx, now=LONG_AGO), matching=LEDGER)

    assert ledger_reads(*plans) == {"ix_email_messages_queued_updated_at"}


def test_reconcile_reads_units_nobody_finishes_through_the_sending_indexes(
    ledger_reads: LedgerReads, session: Session, factory: sessionmaker[Session], ctx: SendContext
) -> None:
    plans = plans_of(session, lambda: maintenance.reconcile(factory, ctx, now=LONG_AGO), matching=LEDGER)

    assert ledger_reads(*plans) and ledger_reads(*plans) <= PARTIAL["sending"]


def test_attachment_retention_reads_only_the_waiting_rows_partial_indexes(
    ledger_reads: LedgerReads,
    conn: psycopg.Connection[Any],
) -> None:
    def remove(c: psycopg.Connection[Any]) -> None:
        with c.transaction(force_rollback=True):
            attachments.remove_unneeded(c, now=datetime.now(UTC))

    [plan] = raw_plans_of(conn, remove, matching=LEDGER)

    assert ledger_reads(plan) and ledger_reads(plan) <= set().union(*PARTIAL.values())


def test_the_reputation_guards_held_rows_are_counted_through_a_deferred_index(
    ledger_reads: LedgerReads, session: Session, volume: LoadedLedger
) -> None:
    [plan] = plans_of(
        session, lambda: held_rows(session, organization_id=volume.organization_id), matching=LEDGER
    )

    assert ledger_reads(plan) and ledger_reads(plan) <= PARTIAL["deferred"]


#: Each row's request body as the worker stores it (a rendered email of a few kilobytes).
_BODIES = """
INSERT INTO email_requests (message_id, request)
SELECT id, jsonb_build_object('from', 'shop@example.test', 'to', recipient, 'subject', 'Your order',
                              'html', repeat('<p>Thank you for your order.</p>', 60))
FROM email_messages
"""
#: The outbox after the broker was away: two published events per delivered row, and a backlog of
#: unpublished ones, more than a run publishes.
_OUTCOME_EVENTS = """
INSERT INTO outcome_events (id, message_id, queue, kind, published_at)
SELECT gen_random_uuid(), m.id, 'shop.outcomes', k.kind,
       CASE WHEN k.kind = 'sent' OR hashtext(m.idempotency_key) % 20 <> 0 THEN now() END
FROM email_messages m, (VALUES ('sent'), ('delivered')) AS k(kind)
WHERE m.status = 'delivered'
"""


@pytest.fixture(scope="module")
def bodies(engine: Engine, volume: LoadedLedger) -> None:
    """A stored request body for every ledger row (the module's other tests read no body), in a day's
    partition not analyzed since: the day being written, its statistics lag (autovacuum kept off so
    that they stay behind for the test)."""
    with engine.connect() as connection:
        partitions = text(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = to_regclass(:p)"
        )
        for partition in connection.scalars(partitions, {"p": "email_requests"}).all():
            connection.execute(text(f"ALTER TABLE {partition} SET (autovacuum_enabled = false)"))
        connection.execute(text(_BODIES))
        connection.commit()


@pytest.fixture(scope="module")
def outbox(engine: Engine, volume: LoadedLedger) -> None:
    """Outcome events for the delivered rows, some unpublished."""
    with engine.connect() as connection:
        connection.execute(text(_OUTCOME_EVENTS))
        connection.commit()
        connection.execute(text("ANALYZE outcome_events"))
        connection.commit()


def test_the_claim_read_looks_each_rows_body_up_by_the_primary_key_never_scanning_the_bodies(
    bodies: None, session: Session, conn: psycopg.Connection[Any]
) -> None:
    # Without a foreign key the planner does not know a row has one body: joined plainly, a day's
    # partition whose statistics lag is estimated at hundreds of bodies per row, and at a day of
    # bodies it hashed them all to read those of one batch.
    ids = [row[0] for row in conn.execute("SELECT id FROM email_messages WHERE status = 'queued' LIMIT 100")]

    [plan] = raw_plans_of(
        conn, lambda c: queue.read_claimed(c, ids, now=datetime.now(UTC)), matching="email_requests"
    )

    paths = partitions_folded(session, access_paths(plan))
    assert {how for table, how in paths if table == "email_requests"} == {"pk_email_requests"}
    assert not [node for node in walk(plan) if node["Node Type"] in {"Hash Join", "Merge Join"}]
    assert plan["Plan Rows"] <= 2 * len(ids)  # one body at most per row, as the planner sees it


def test_the_publishers_claim_reads_the_unpublished_index_and_each_events_row_by_the_primary_key(
    outbox: None, ledger_reads: LedgerReads, session: Session, conn: psycopg.Connection[Any]
) -> None:
    def claim(c: psycopg.Connection[Any]) -> None:
        with c.transaction(force_rollback=True):
            claim_events(c, limit=MAX_EVENTS_PER_RUN)

    [plan] = raw_plans_of(conn, claim, matching="outcome_events")

    paths = partitions_folded(session, access_paths(plan))
    assert {how for table, how in paths if table == "outcome_events"} == {"ix_outcome_events_unpublished"}
    assert ledger_reads(plan) == {"pk_email_messages"}
    assert not [node for node in walk(plan) if node["Node Type"] in {"Hash Join", "Merge Join"}]
