"""A large send ledger loaded with ``generate_series``, for query-plan tests and benchmarks.

One organization and connector; ``tasks`` campaigns each sent to the same ``messages / tasks``
recipients (so a recipient has one message per campaign, and its history grows with the number of
campaigns, not with the ledger). Recipients are stored bare and mixed-case (``Reader7@Example.test``),
as an upstream app may spell them. Each message has a ``delivered`` metric row; every tenth one a
soft bounce as well.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, text


@dataclass(frozen=True)
class LoadedLedger:
    """What :func:`load_ledger` wrote."""

    organization_id: uuid.UUID
    connector_id: uuid.UUID
    task_ids: list[uuid.UUID]
    recipients_per_task: int

    def recipient(self, number: int) -> str:
        """Recipient ``number`` as it is stored."""
        return f"Reader{number}@Example.test"


_MESSAGES = text("""
INSERT INTO email_messages (organization_id, connector_id, task_id, idempotency_key, recipient, status,
    resend_email_id, sent_at)
SELECT :organization_id, :connector_id, (CAST(:task_ids AS uuid[]))[1 + g / :per_task],
    'volume/' || g, 'Reader' || (g % :per_task) || '@Example.test', 'delivered',
    'volume-' || g, now() - make_interval(secs => g)
FROM generate_series(0, :messages - 1) AS g
""")

_METRICS = text("""
INSERT INTO email_metrics (message_id, task_id, connector_id, event, recipient, status, metadata, occurred_at)
SELECT m.id, m.task_id, m.connector_id, e.event, m.recipient, e.event,
    CASE WHEN e.event = 'bounced' THEN '{"bounce_type": "Transient"}'::jsonb ELSE '{}'::jsonb END,
    m.sent_at + make_interval(mins => e.minutes)
FROM email_messages AS m
JOIN (VALUES ('delivered', 1, 1), ('bounced', 2, 10)) AS e(event, minutes, every) ON true
WHERE m.organization_id = :organization_id AND hashtext(m.idempotency_key) % e.every = 0
""")


def load_ledger(connection: Connection, *, messages: int, tasks: int) -> LoadedLedger:
    """Write a new organization's ledger of ``messages`` rows in ``tasks`` campaigns, then ANALYZE.

    Commits (``ANALYZE`` must see the rows). ``messages`` must be a multiple of ``tasks``.
    """
    if messages % tasks:
        raise ValueError(f"messages ({messages}) must be a multiple of tasks ({tasks})")
    organization_id, connector_id = uuid.uuid4(), uuid.uuid4()
    task_ids = [uuid.uuid4() for _ in range(tasks)]
    connection.execute(
        text("INSERT INTO organizations (id, name) VALUES (:id, 'volume')"), {"id": organization_id}
    )
    connection.execute(
        text("INSERT INTO connectors (id, organization_id, name) VALUES (:id, :organization_id, 'volume')"),
        {"id": connector_id, "organization_id": organization_id},
    )
    connection.execute(
        text("INSERT INTO tasks (id, organization_id, name) VALUES (:id, :organization_id, 'campaign')"),
        [{"id": task_id, "organization_id": organization_id} for task_id in task_ids],
    )
    ids = {"organization_id": organization_id, "connector_id": connector_id}
    per_task = messages // tasks
    connection.execute(_MESSAGES, {**ids, "task_ids": task_ids, "per_task": per_task, "messages": messages})
    connection.execute(_METRICS, {"organization_id": organization_id})
    connection.commit()
    analyze(connection)
    return LoadedLedger(organization_id, connector_id, task_ids, per_task)


def analyze(connection: Connection) -> None:
    """Fresh planner statistics for the ledger tables (expression indexes included)."""
    for table in ("email_messages", "email_metrics"):
        connection.execute(text(f"ANALYZE {table}"))
    connection.commit()
