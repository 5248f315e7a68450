"""Revision 0016 on a database filled at 0011: tasks recounted, marks built, then kept incrementally."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg

from shared import migrations
from shared.counters.recount import recount_task
from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import Task
from shared.settings import load_settings

#: One campaign's ledger rows: (status, its metric rows as (event, bounce type, email topic)).
ROWS: list[tuple[str, list[tuple[str, str | None, str | None]]]] = [
    (
        "delivered",
        [("sent", None, None), ("delivered", None, None), ("opened", None, None), ("opened", None, None)],
    ),
    ("delivered", [("delivered", None, None), ("clicked", None, None), ("unsubscribed", None, "news")]),
    ("bounced", [("sent", None, None), ("bounced", "Permanent", None)]),
    ("queued", []),
]


def _one(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...]) -> Any:
    found = conn.execute(sql, params).fetchone()
    assert found is not None
    return found[0]


def _fill_at_0011(url: str) -> uuid.UUID:
    """A campaign whose kept figures are stale (as 0011 left them between recounts)."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as conn:
        org = _one(conn, "INSERT INTO organizations (name) VALUES ('o') RETURNING id", ())
        connector = _one(
            conn, "INSERT INTO connectors (organization_id, name) VALUES (%s, 'c') RETURNING id", (org,)
        )
        stale = {
            "sends": {"queued": 4, "total": 4},
            "delivery": {"unsubscribed": 1},
            "worker": {"kept": True},
        }
        task = _one(
            conn,
            "INSERT INTO tasks (organization_id, execution_result) VALUES (%s, %s) RETURNING id",
            (org, json.dumps(stale)),
        )
        for number, (status, events) in enumerate(ROWS):
            message = _one(
                conn,
                "INSERT INTO email_messages (organization_id, connector_id, task_id, idempotency_key,"
                " recipient, status) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (org, connector, task, f"k{number}", f"r{number}@example.test", status),
            )
            for event, bounce, topic in events:
                metadata: dict[str, Any] = {"bounce_type": bounce} if bounce else {}
                if event == "unsubscribed":
                    metadata = {"message_id": str(message), "email_topic": topic, "topic": topic}
                conn.execute(
                    "INSERT INTO email_metrics (message_id, task_id, connector_id, event, metadata)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (message, task, connector, event, json.dumps(metadata)),
                )
    return uuid.UUID(str(task))


def test_upgrade_to_0016_recounts_existing_tasks_and_builds_their_marks(database_url: str) -> None:
    migrations.upgrade(database_url, "0011")
    task_id = _fill_at_0011(database_url)

    migrations.upgrade(database_url)

    engine = make_engine(load_settings(database_url=database_url))
    factory = make_sessionmaker(engine)
    try:
        with transaction(factory) as session:
            result = recount_task(session, task_id)
        assert result is not None and not result.changed
        sends, delivery = result.after["sends"], result.after["delivery"]
        assert sends == {"delivered": 2, "bounced": 1, "queued": 1, "total": 4}
        assert (delivery["delivered"], delivery["opened_unique"], delivery["opened_total"]) == (2, 1, 2)
        assert (delivery["bounced_hard"], delivery["events"], delivery["unsubscribed"]) == (1, 9, 1)
        assert delivery["unsubscribed_by_topic"] == {"news": 1}
        with transaction(factory) as session:
            # At head the delivery marks are message_marks' kinds (revision 0020).
            marks = (
                session.connection()
                .exec_driver_sql("SELECT count(*) FROM message_marks WHERE kinds <> 0")
                .scalar()
            )
            session.connection().exec_driver_sql(
                "UPDATE email_messages SET status = 'sending' WHERE status = 'queued'"
            )
        assert marks == 3
        with factory() as session:
            assert session.get_one(Task, task_id).execution_result["worker"] == {"kept": True}
        with transaction(factory) as session:
            after = recount_task(session, task_id)
        assert after is not None and not after.changed
        assert after.after["sends"] == {"delivered": 2, "bounced": 1, "sending": 1, "total": 4}
    finally:
        engine.dispose()


def test_downgrade_from_0016_drops_the_marks_and_the_triggers(database_url: str) -> None:
    migrations.upgrade(database_url)

    migrations.downgrade(database_url, "0011")

    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        triggers = conn.execute("SELECT tgname FROM pg_trigger WHERE tgname LIKE '%task_sends%'").fetchall()
        table = conn.execute("SELECT to_regclass('delivery_marks')").fetchone()
    assert triggers == [] and table == (None,)
