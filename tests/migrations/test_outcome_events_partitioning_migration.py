"""Revision 0021 rebuilds the outbox (outcome_events) partitioned by day of created_at: on a database
filled at the revision before it, every event is kept in its day's partition, its keys and indexes are
made again, a change written again still writes one event, and the downgrade gives every event back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from shared import migrations
from tests.migrations.revisions import database_before, previous_revision
from tests.raw_connections import connect

REVISION = "0021"
NOW = datetime.now(UTC).replace(microsecond=0)
#: A day with no partition made ahead: the migration makes one for the events written then.
LAST_WEEK = NOW - timedelta(days=6)
EVENTS = "SELECT id, kind, created_at, published_at, organization_id FROM outcome_events ORDER BY id"


@pytest.fixture
def database_url() -> Iterator[str]:
    """A database of this test's own at the revision before ``REVISION``."""
    with database_before(REVISION) as url:
        yield url


def fill(url: str) -> uuid.UUID:
    """A ledger row naming an outcomes queue (its trigger's queued event, written now), a sent event of
    it published last week, and a reputation event of its organization last week, unpublished: the
    ledger row's id."""
    with connect(url) as conn:
        org = conn.execute("INSERT INTO organizations (name) VALUES ('o') RETURNING id").fetchone()
        assert org is not None
        connector = conn.execute(
            "INSERT INTO connectors (organization_id, name) VALUES (%s, 'c') RETURNING id", org
        ).fetchone()
        assert connector is not None
        row = conn.execute(
            "INSERT INTO email_messages (organization_id, connector_id, idempotency_key, recipient, status,"
            " outcomes_queue) VALUES (%s, %s, 'k', 'a@x.test', 'queued', 'replies') RETURNING id",
            (org[0], connector[0]),
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO outcome_events (id, message_id, queue, kind, created_at, published_at)"
            " VALUES (gen_random_uuid(), %s, 'replies', 'sent', %s, %s)",
            (row[0], LAST_WEEK, LAST_WEEK),
        )
        conn.execute(
            "INSERT INTO outcome_events (id, organization_id, queue, kind, scope, scope_id, created_at)"
            " VALUES (gen_random_uuid(), %s, 'replies', 'reputation_warning', 'connector', %s, %s)",
            (org[0], connector[0], LAST_WEEK),
        )
        return uuid.UUID(str(row[0]))


def events(url: str) -> list[tuple[object, ...]]:
    with connect(url) as conn:
        return [tuple(found) for found in conn.execute(EVENTS).fetchall()]


def test_every_event_is_kept_in_its_days_partition(database_url: str) -> None:
    fill(database_url)
    before = events(database_url)

    migrations.upgrade(database_url, REVISION)

    assert events(database_url) == before
    with connect(database_url) as conn:
        partitions = conn.execute(
            "SELECT kind, tableoid::regclass::text FROM outcome_events ORDER BY kind"
        ).fetchall()
    assert partitions == [
        ("queued", f"outcome_events_p{NOW:%Y%m%d}"),
        ("reputation_warning", f"outcome_events_p{LAST_WEEK:%Y%m%d}"),
        ("sent", f"outcome_events_p{LAST_WEEK:%Y%m%d}"),
    ]


def test_the_outbox_keys_and_indexes_are_made_again(database_url: str) -> None:
    migrations.upgrade(database_url, REVISION)

    with connect(database_url) as conn:
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'outcome_events' ORDER BY 1"
        ).fetchall()
        foreign_keys = conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'outcome_events'::regclass AND contype = 'f'"
        ).fetchall()
    assert [name for name, _ in indexes] == [
        "ix_outcome_events_message_id",
        "ix_outcome_events_unpublished",
        "pk_outcome_events",
    ]
    assert "(id, created_at)" in dict(indexes)["pk_outcome_events"]
    assert foreign_keys == [("fk_outcome_events_organization_id_organizations",)]


def test_a_status_change_written_again_after_the_upgrade_writes_one_event(database_url: str) -> None:
    message = fill(database_url)

    migrations.upgrade(database_url, REVISION)

    with connect(database_url) as conn:
        for status in ("sending", "queued", "sending", "queued"):
            conn.execute("UPDATE email_messages SET status = %s WHERE id = %s", (status, message))
        queued = conn.execute("SELECT count(*) FROM outcome_events WHERE kind = 'queued'").fetchone()
    assert queued == (1,)


def test_the_downgrade_gives_back_every_event(database_url: str) -> None:
    fill(database_url)
    before = events(database_url)
    migrations.upgrade(database_url, REVISION)

    migrations.downgrade(database_url, previous_revision(REVISION))

    assert events(database_url) == before
    with connect(database_url) as conn:
        partitioned = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'outcome_events'").fetchone()
    assert partitioned == ("r",)
