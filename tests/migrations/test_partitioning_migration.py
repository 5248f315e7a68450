"""Revision 0015 rebuilds email_metrics and webhook_events partitioned: on a database filled at the
revision before it, every row is kept, filed in its period's partition, and still deduplicated."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from shared import migrations
from tests.migrations.revisions import database_before, previous_revision
from tests.raw_connections import connect

REVISION = "0015"
NOW = datetime.now(UTC).replace(microsecond=0)
#: A stored request as the previous revision keeps it on the ledger row, with the worker's own tag.
REQUEST = {
    "subject": "Hello",
    "tags": [{"name": "campaign", "value": "spring"}, {"name": "message_id", "value": "m-1"}],
}
#: Always in an earlier month than NOW.
LAST_MONTH = NOW - timedelta(days=40)


@pytest.fixture
def database_url() -> Iterator[str]:
    """A database of this test's own at the revision before ``REVISION``."""
    with database_before(REVISION) as url:
        yield url


def fill(url: str) -> dict[str, uuid.UUID]:
    """Rows as the previous revision holds them: a ledger row with an outcomes queue, dated events
    (one last month), an undated one, and metrics linked to the events."""
    with connect(url) as conn:
        org = conn.execute("INSERT INTO organizations (name) VALUES ('o') RETURNING id").fetchone()
        assert org is not None
        connector = conn.execute(
            "INSERT INTO connectors (organization_id, name) VALUES (%s, 'c') RETURNING id", org
        ).fetchone()
        assert connector is not None
        message = conn.execute(
            "INSERT INTO email_messages (organization_id, connector_id, idempotency_key, recipient, status,"
            " outcomes_queue, request) VALUES (%s, %s, 'k', 'a@x.test', 'sent', 'replies', %s) RETURNING id",
            (org[0], connector[0], json.dumps(REQUEST)),
        ).fetchone()
        assert message is not None
        ids = {"message": message[0]}
        for name, created_at in (("recent", NOW), ("old", LAST_MONTH), ("undated", None)):
            payload = {"type": "email.delivered", "data": {}}
            if created_at is not None:
                payload["created_at"] = created_at.isoformat().replace("+00:00", "Z")
            row = conn.execute(
                "INSERT INTO webhook_events (svix_id, type, payload, processed_at)"
                " VALUES (%s, 't', %s, now()) RETURNING id",
                (f"msg_{name}", json.dumps(payload)),
            ).fetchone()
            assert row is not None
            ids[name] = row[0]
            conn.execute(
                "INSERT INTO email_metrics (message_id, connector_id, webhook_event_id, event, occurred_at)"
                " VALUES (%s, %s, %s, 'delivered', %s)",
                (message[0], connector[0], row[0], created_at or NOW),
            )
    return ids


def test_request_bodies_move_apart_and_the_callers_tags_stay_on_the_row(database_url: str) -> None:
    ids = fill(database_url)

    migrations.upgrade(database_url, REVISION)

    with connect(database_url) as conn:
        body = conn.execute(
            "SELECT request FROM email_requests WHERE message_id = %s", (ids["message"],)
        ).fetchone()
        tags = conn.execute("SELECT tags FROM email_messages WHERE id = %s", (ids["message"],)).fetchone()
    assert body == (REQUEST,)
    assert tags == ([{"name": "campaign", "value": "spring"}],)


def where(url: str, table: str, row_id: uuid.UUID) -> str:
    with connect(url) as conn:
        found = conn.execute(
            f"SELECT tableoid::regclass::text FROM {table} WHERE id = %s", (row_id,)
        ).fetchone()
    assert found is not None
    return str(found[0])


def test_events_are_kept_and_filed_by_their_payload_time(database_url: str) -> None:
    ids = fill(database_url)

    migrations.upgrade(database_url, REVISION)

    assert where(database_url, "webhook_events", ids["recent"]) == f"webhook_events_p{NOW:%Y%m%d}"
    assert where(database_url, "webhook_events", ids["old"]) == f"webhook_events_p{LAST_MONTH:%Y%m%d}"
    assert where(database_url, "webhook_events", ids["undated"]) == "webhook_events_default"


def test_metrics_are_kept_in_their_months_partition(database_url: str) -> None:
    fill(database_url)

    migrations.upgrade(database_url, REVISION)

    with connect(database_url) as conn:
        partitions = conn.execute(
            "SELECT tableoid::regclass::text, count(*) FROM email_metrics GROUP BY 1"
        ).fetchall()
    assert dict(partitions) == {f"email_metrics_p{NOW:%Y%m}": 2, f"email_metrics_p{LAST_MONTH:%Y%m}": 1}


def test_a_redelivered_event_is_still_stored_once(database_url: str) -> None:
    fill(database_url)

    migrations.upgrade(database_url, REVISION)

    with connect(database_url) as conn:
        again = conn.execute(
            "INSERT INTO webhook_events (svix_id, type, payload, occurred_at)"
            " VALUES ('msg_recent', 't', '{}', %s)"
            " ON CONFLICT (svix_id, occurred_at) DO NOTHING RETURNING id",
            (NOW,),
        ).fetchone()
    assert again is None


def test_new_metrics_still_write_outcome_events(database_url: str) -> None:
    ids = fill(database_url)
    migrations.upgrade(database_url, REVISION)

    with connect(database_url) as conn:
        conn.execute("INSERT INTO email_metrics (message_id, event) VALUES (%s, 'opened')", (ids["message"],))
        kinds = [kind for (kind,) in conn.execute("SELECT kind FROM outcome_events ORDER BY kind").fetchall()]
    assert "opened" in kinds


def test_downgrade_restores_every_row(database_url: str) -> None:
    fill(database_url)
    migrations.upgrade(database_url, REVISION)

    migrations.downgrade(database_url, previous_revision(REVISION))

    with connect(database_url) as conn:
        events = conn.execute("SELECT count(*) FROM webhook_events").fetchone()
        linked = conn.execute("SELECT count(webhook_event_id) FROM email_metrics").fetchone()
        requests = conn.execute("SELECT request FROM email_messages").fetchall()
    assert events == (3,) and linked == (3,)
    assert requests == [(REQUEST,)]
