"""Revision 0013 converts the reputation counts of existing campaigns into slices of 100 recipients, and
moves a resumed campaign's offsets to its slice (and back on downgrade)."""

from __future__ import annotations

import uuid

from shared import migrations
from tests.raw_connections import connect


def _campaign_of_250_resumed_after_150(url: str) -> uuid.UUID:
    """A campaign counted before 0013: 250 recipients (the first 30 hard bounces), resumed once 150
    were counted (its offsets: the total then)."""
    with connect(url) as connection:
        org = connection.execute("INSERT INTO organizations (name) VALUES ('o') RETURNING id").fetchone()
        assert org is not None
        connector = connection.execute(
            "INSERT INTO connectors (organization_id, name) VALUES (%s, 'c') RETURNING id", org
        ).fetchone()
        task = connection.execute(
            "INSERT INTO tasks (organization_id) VALUES (%s) RETURNING id", org
        ).fetchone()
        assert connector is not None and task is not None
        for n in range(250):
            message = connection.execute(
                "INSERT INTO email_messages (organization_id, connector_id, task_id, idempotency_key,"
                " recipient, created_at)"
                " VALUES (%s, %s, %s, %s, %s, now() + make_interval(secs => %s)) RETURNING id",
                (org[0], connector[0], task[0], f"k{n}", f"r{n}@example.test", n),
            ).fetchone()
            assert message is not None
            connection.execute(
                "INSERT INTO reputation_marks (message_id, bucket, counted, hard_bounce)"
                " VALUES (%s, 20000, true, %s)",
                (message[0], n < 30),
            )
        connection.execute(
            "INSERT INTO reputation_counts (scope_id, bucket, scope, recipients, hard_bounces)"
            " VALUES (%s, 0, 'campaign', 250, 30)",
            task,
        )
        connection.execute(
            "INSERT INTO reputation_states (scope_id, scope, organization_id, state, resume_bucket,"
            " offset_recipients, offset_hard_bounces) VALUES (%s, 'campaign', %s, 'ok', 0, 150, 30)",
            (task[0], org[0]),
        )
        return task[0]


def _slices(url: str, task: uuid.UUID) -> dict[int, tuple[int, int]]:
    with connect(url) as connection:
        rows = connection.execute(
            "SELECT bucket, recipients, hard_bounces FROM reputation_counts WHERE scope_id = %s", (task,)
        ).fetchall()
    return {bucket: (recipients, hard) for bucket, recipients, hard in rows}


def _resume(url: str, task: uuid.UUID) -> tuple[int, int, int]:
    with connect(url) as connection:
        row = connection.execute(
            "SELECT resume_bucket, offset_recipients, offset_hard_bounces FROM reputation_states"
            " WHERE scope_id = %s",
            (task,),
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def test_upgrade_numbers_existing_campaign_recipients_into_slices(database_url: str) -> None:
    migrations.upgrade(database_url, "0011")
    task = _campaign_of_250_resumed_after_150(database_url)

    migrations.upgrade(database_url, "0013")

    assert _slices(database_url, task) == {0: (250, 30), 1: (100, 30), 2: (100, 0), 3: (50, 0)}
    # 150 counted at the resume: slice 1 whole, and 50 of slice 2 (none of them bounced).
    assert _resume(database_url, task) == (2, 50, 0)


def test_downgrade_restores_the_campaign_total_offsets(database_url: str) -> None:
    migrations.upgrade(database_url, "0011")
    task = _campaign_of_250_resumed_after_150(database_url)
    migrations.upgrade(database_url, "0013")

    migrations.downgrade(database_url, "0011")

    assert _slices(database_url, task) == {0: (250, 30)}
    assert _resume(database_url, task) == (0, 150, 30)
