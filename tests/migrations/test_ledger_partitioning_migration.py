"""Revision 0020 rebuilds the ledger (email_messages) partitioned by month: on a database filled at the
revision before it, every row is kept in its month's partition with what depends on it, the indexes
and triggers are made again, and the downgrade gives back an unpartitioned ledger with every row."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from shared import migrations
from tests.migrations.revisions import database_before, previous_revision
from tests.raw_connections import connect

REVISION = "0020"
NOW = datetime.now(UTC).replace(microsecond=0)
#: Always in an earlier month than NOW.
LAST_MONTH = NOW - timedelta(days=40)
#: What depends on a ledger row, before the revision (a mark table each) and after (one, message_marks).
DEPENDANTS = {
    "requests": "SELECT count(*) FROM email_requests",
    "metrics": "SELECT count(*) FROM email_metrics WHERE message_id IS NOT NULL",
    "outcome events": "SELECT count(*) FROM outcome_events WHERE message_id IS NOT NULL",
    "delivery marks": "SELECT count(*) FROM {marks} WHERE kinds <> 0",
    "reputation marks": "SELECT count(*) FROM {reputation} WHERE bucket IS NOT NULL",
}


@pytest.fixture
def database_url() -> Iterator[str]:
    """A database of this test's own at the revision before ``REVISION``."""
    with database_before(REVISION) as url:
        yield url


def fill(url: str) -> dict[str, uuid.UUID]:
    """A task's ledger rows as the previous revision holds them, one written last month, one now, each
    with a request body, a metric, an outcome event (its outcomes queue), and both marks."""
    with connect(url) as conn:
        org = conn.execute("INSERT INTO organizations (name) VALUES ('o') RETURNING id").fetchone()
        assert org is not None
        connector = conn.execute(
            "INSERT INTO connectors (organization_id, name) VALUES (%s, 'c') RETURNING id", org
        ).fetchone()
        task = conn.execute("INSERT INTO tasks (organization_id) VALUES (%s) RETURNING id", org).fetchone()
        assert connector is not None and task is not None
        ids = {"organization": org[0], "task": task[0]}
        for name, created_at in (("old", LAST_MONTH), ("recent", NOW)):
            row = conn.execute(
                "INSERT INTO email_messages (organization_id, connector_id, task_id, idempotency_key,"
                " recipient, status, outcomes_queue, created_at)"
                " VALUES (%s, %s, %s, %s, 'a@x.test', 'sent', 'replies', %s) RETURNING id",
                (org[0], connector[0], task[0], name, created_at),
            ).fetchone()
            assert row is not None
            ids[name] = row[0]
            conn.execute(
                "INSERT INTO email_requests (message_id, stored_at, request) VALUES (%s, %s, '{}')",
                (row[0], created_at),
            )
            conn.execute(
                "INSERT INTO email_metrics (message_id, task_id, event, occurred_at)"
                " VALUES (%s, %s, 'sent', %s)",
                (row[0], task[0], created_at),
            )
            conn.execute("INSERT INTO delivery_marks (message_id, kinds) VALUES (%s, 1)", (row[0],))
            conn.execute("INSERT INTO reputation_marks (message_id, bucket) VALUES (%s, 1)", (row[0],))
    return ids


def dependants(url: str) -> dict[str, int]:
    with connect(url) as conn:
        folded = conn.execute("SELECT to_regclass('message_marks') IS NOT NULL").fetchone() == (True,)
        tables = {
            "marks": "message_marks" if folded else "delivery_marks",
            "reputation": "message_marks" if folded else "reputation_marks",
        }
        counts = {}
        for name, query in DEPENDANTS.items():
            found = conn.execute(query.format(**tables)).fetchone()
            assert found is not None
            counts[name] = int(str(found[0]))
        return counts


def ledger_schema(url: str) -> tuple[set[str], set[str], set[str]]:
    """The ledger's index, trigger and constraint names (its primary key apart)."""
    with connect(url) as conn:
        indexes = conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'email_messages'")
        triggers = conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'email_messages'::regclass AND NOT tgisinternal"
        )
        constraints = conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'email_messages'::regclass"
        )
        return (
            {str(name) for (name,) in indexes},
            {str(name) for (name,) in triggers},
            {str(name) for (name,) in constraints},
        )


def test_every_ledger_row_is_kept_in_its_months_partition(database_url: str) -> None:
    fill(database_url)

    migrations.upgrade(database_url, REVISION)

    with connect(database_url) as conn:
        partitions = conn.execute(
            "SELECT idempotency_key, tableoid::regclass::text FROM email_messages ORDER BY 1"
        ).fetchall()
    assert partitions == [
        ("old", f"email_messages_p{LAST_MONTH:%Y%m}"),
        ("recent", f"email_messages_p{NOW:%Y%m}"),
    ]


def test_what_depends_on_a_ledger_row_is_kept(database_url: str) -> None:
    fill(database_url)
    before = dependants(database_url)

    migrations.upgrade(database_url, REVISION)

    assert dependants(database_url) == before
    assert all(count >= 2 for count in before.values())


def test_the_ledgers_indexes_triggers_and_constraints_are_made_again(database_url: str) -> None:
    before = ledger_schema(database_url)

    migrations.upgrade(database_url, REVISION)

    indexes, triggers, constraints = ledger_schema(database_url)
    assert indexes == before[0]
    assert triggers == before[1] | {"email_messages_dependants_delete"}
    assert constraints == before[2]


def test_task_counters_follow_a_status_change_after_the_upgrade(database_url: str) -> None:
    ids = fill(database_url)
    migrations.upgrade(database_url, REVISION)

    with connect(database_url) as conn:
        conn.execute("UPDATE email_messages SET status = 'delivered' WHERE id = %s", (ids["old"],))
        sends = conn.execute(
            "SELECT execution_result -> 'sends' FROM tasks WHERE id = %s", (ids["task"],)
        ).fetchone()
    assert sends is not None
    assert isinstance(sends[0], dict)
    assert (sends[0].get("delivered"), sends[0].get("total")) == (1, 2)


def test_a_deleted_ledger_row_takes_what_depends_on_it_along(database_url: str) -> None:
    ids = fill(database_url)
    migrations.upgrade(database_url, REVISION)

    with connect(database_url) as conn:
        conn.execute("DELETE FROM organizations WHERE id = %s", (ids["organization"],))

    assert dependants(database_url) == dict.fromkeys(DEPENDANTS, 0)


def test_a_rows_two_marks_become_one_in_its_months_partition(database_url: str) -> None:
    ids = fill(database_url)

    migrations.upgrade(database_url, REVISION)

    with connect(database_url) as conn:
        marks = conn.execute(
            "SELECT message_id, tableoid::regclass::text, kinds, bucket FROM message_marks ORDER BY 2"
        ).fetchall()
    assert marks == [
        (ids["old"], f"message_marks_p{LAST_MONTH:%Y%m}", 1, 1),
        (ids["recent"], f"message_marks_p{NOW:%Y%m}", 1, 1),
    ]


def test_downgrade_restores_an_unpartitioned_ledger_with_every_row(database_url: str) -> None:
    fill(database_url)
    before = ledger_schema(database_url), dependants(database_url)
    migrations.upgrade(database_url, REVISION)

    migrations.downgrade(database_url, previous_revision(REVISION))

    with connect(database_url) as conn:
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'email_messages'").fetchone()
        keys = conn.execute("SELECT idempotency_key FROM email_messages ORDER BY 1").fetchall()
        references = conn.execute(
            "SELECT count(*) FROM pg_constraint"
            " WHERE confrelid = 'email_messages'::regclass AND conparentid = 0"
        ).fetchone()
    assert kind == ("r",)
    assert keys == [("old",), ("recent",)]
    assert references == (5,)  # requests, metrics, outcome events and both marks
    assert (ledger_schema(database_url), dependants(database_url)) == before
