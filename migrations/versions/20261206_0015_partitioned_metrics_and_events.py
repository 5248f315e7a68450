"""email_metrics and webhook_events partitioned by time; request bodies apart; metric_rollups

Revision ID: 0015
Revises: 0014
Each table is rebuilt partitioned (a default partition each) and its rows moved; unique keys include
the partition key; the metrics' foreign key to webhook_events goes. Request bodies move from the
ledger to email_requests, the caller's tags staying on the row. Rewrites under exclusive locks: run
it in a quiet hour. Layout and reasons: docs/architecture.md, section 12.

Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Periods created beyond the current one, as shared.partitions.tables declares them.
EVENT_DAYS_AHEAD = 3
METRIC_MONTHS_AHEAD = 1
REQUEST_DAYS_AHEAD = 3
#: Tags the worker sets on every request (marketing_pilot_client.payloads.RESERVED_TAGS).
RESERVED_TAGS = "('task_id', 'message_id')"

# The payload's created_at as the receiver reads it (ISO 8601 with Z or an offset), else NULL.
_EVENT_TIME = r"""
CREATE FUNCTION pg_temp.pilot_event_time(value text) RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN
    IF value IS NULL OR value !~ '^\d{4}-\d\d-\d\d[T ]\d\d:\d\d' OR value !~ '(Z|[+-]\d\d(:?\d\d)?)$' THEN
        RETURN NULL;
    END IF;
    RETURN value::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$
"""
_EVENT_OCCURRED_AT = "coalesce(pg_temp.pilot_event_time(payload ->> 'created_at'), '1970-01-01 00:00:00+00')"

_WEBHOOK_EVENTS = """
CREATE TABLE webhook_events (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    occurred_at timestamptz DEFAULT '1970-01-01 00:00:00+00' NOT NULL,
    svix_id text NOT NULL,
    type text NOT NULL,
    payload jsonb NOT NULL,
    received_at timestamptz DEFAULT now() NOT NULL,
    processed_at timestamptz,
    attempts integer DEFAULT 0 NOT NULL,
    error text,
    CONSTRAINT pk_webhook_events PRIMARY KEY (id, occurred_at),
    CONSTRAINT uq_webhook_events_svix_id_occurred_at UNIQUE (svix_id, occurred_at)
) PARTITION BY RANGE (occurred_at)
"""
_EVENT_COLUMNS = "id, svix_id, type, payload, received_at, processed_at, attempts, error"

_EMAIL_METRICS = """
CREATE TABLE email_metrics (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    message_id uuid,
    task_id uuid,
    connector_id uuid,
    webhook_event_id uuid,
    event text NOT NULL,
    recipient text,
    subject text,
    status text,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    occurred_at timestamptz DEFAULT now() NOT NULL,
    created_at timestamptz DEFAULT now() NOT NULL
) PARTITION BY RANGE (occurred_at)
"""
_METRIC_COLUMNS = (
    "id, message_id, task_id, connector_id, webhook_event_id, event, recipient, subject, status,"
    " metadata, occurred_at, created_at"
)
_METRIC_KEYS = """
ALTER TABLE email_metrics
    ADD CONSTRAINT pk_email_metrics PRIMARY KEY (id, occurred_at),
    ADD CONSTRAINT uq_email_metrics_webhook_event_id_occurred_at UNIQUE (webhook_event_id, occurred_at),
    ADD CONSTRAINT fk_email_metrics_connector_id_connectors FOREIGN KEY (connector_id)
        REFERENCES connectors (id) ON DELETE SET NULL,
    ADD CONSTRAINT fk_email_metrics_message_id_email_messages FOREIGN KEY (message_id)
        REFERENCES email_messages (id) ON DELETE CASCADE,
    ADD CONSTRAINT fk_email_metrics_task_id_tasks FOREIGN KEY (task_id) REFERENCES tasks (id) ON DELETE CASCADE
"""
_METRIC_INDEXES = ("connector_id", "event", "message_id", "task_id")
_METRIC_TRIGGER = """
CREATE TRIGGER email_metrics_outcome_events
    AFTER INSERT ON email_metrics FOR EACH ROW EXECUTE FUNCTION pilot_outcome_of_metric()
"""


def upgrade() -> None:
    op.execute("ALTER TABLE email_metrics DROP CONSTRAINT fk_email_metrics_webhook_event_id_webhook_events")
    _partition_webhook_events()
    _partition_email_metrics()
    _move_request_bodies()
    op.create_table(
        "metric_rollups",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("scope_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("scope IN ('task', 'connector')", name=op.f("ck_metric_rollups_scope")),
        sa.PrimaryKeyConstraint("scope", "scope_id", "day", "event", name=op.f("pk_metric_rollups")),
    )


def _partition_webhook_events() -> None:
    op.execute("ALTER TABLE webhook_events RENAME TO webhook_events_unpartitioned")
    op.execute(
        "ALTER TABLE webhook_events_unpartitioned"
        " DROP CONSTRAINT pk_webhook_events, DROP CONSTRAINT uq_webhook_events_svix_id"
    )
    op.execute("DROP INDEX ix_webhook_events_unprocessed")
    op.execute(_EVENT_TIME)
    op.execute(_WEBHOOK_EVENTS)
    op.execute(
        "CREATE INDEX ix_webhook_events_unprocessed ON webhook_events (received_at) WHERE processed_at IS NULL"
    )
    days = op.get_bind().scalars(
        sa.text(
            f"SELECT DISTINCT date_trunc('day', {_EVENT_OCCURRED_AT} AT TIME ZONE 'UTC')"
            " FROM webhook_events_unpartitioned"
        )
    )
    _create_partitions("webhook_events", "day", {day.replace(tzinfo=UTC) for day in days}, EVENT_DAYS_AHEAD)
    op.execute(
        f"INSERT INTO webhook_events (occurred_at, {_EVENT_COLUMNS})"
        f" SELECT {_EVENT_OCCURRED_AT}, {_EVENT_COLUMNS} FROM webhook_events_unpartitioned"
    )
    op.execute("DROP TABLE webhook_events_unpartitioned")


def _partition_email_metrics() -> None:
    op.execute("ALTER TABLE email_metrics RENAME TO email_metrics_unpartitioned")
    op.execute("DROP TRIGGER email_metrics_outcome_events ON email_metrics_unpartitioned")
    op.execute(
        "ALTER TABLE email_metrics_unpartitioned DROP CONSTRAINT pk_email_metrics,"
        " DROP CONSTRAINT uq_email_metrics_webhook_event_id,"
        " DROP CONSTRAINT fk_email_metrics_connector_id_connectors,"
        " DROP CONSTRAINT fk_email_metrics_message_id_email_messages,"
        " DROP CONSTRAINT fk_email_metrics_task_id_tasks"
    )
    for column in _METRIC_INDEXES:
        op.execute(f"DROP INDEX ix_email_metrics_{column}")
    op.execute(_EMAIL_METRICS)
    months = op.get_bind().scalars(
        sa.text(
            "SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC') FROM email_metrics_unpartitioned"
        )
    )
    _create_partitions(
        "email_metrics", "month", {month.replace(tzinfo=UTC) for month in months}, METRIC_MONTHS_AHEAD
    )
    # Rows first, then keys, indexes and the trigger: built once, and no outcome event written again.
    op.execute(
        f"INSERT INTO email_metrics ({_METRIC_COLUMNS}) SELECT {_METRIC_COLUMNS} FROM email_metrics_unpartitioned"
    )
    op.execute("DROP TABLE email_metrics_unpartitioned")
    op.execute(_METRIC_KEYS)
    for column in _METRIC_INDEXES:
        op.execute(f"CREATE INDEX ix_email_metrics_{column} ON email_metrics ({column})")
    op.execute(_METRIC_TRIGGER)


def _move_request_bodies() -> None:
    op.execute(
        "CREATE TABLE email_requests (message_id uuid NOT NULL, stored_at timestamptz DEFAULT now() NOT NULL,"
        " request jsonb NOT NULL) PARTITION BY RANGE (stored_at)"
    )
    days = op.get_bind().scalars(
        sa.text("SELECT DISTINCT date_trunc('day', created_at AT TIME ZONE 'UTC') FROM email_messages")
    )
    _create_partitions("email_requests", "day", {day.replace(tzinfo=UTC) for day in days}, REQUEST_DAYS_AHEAD)
    op.execute("INSERT INTO email_requests SELECT id, created_at, request FROM email_messages")
    op.execute(
        "ALTER TABLE email_requests ADD CONSTRAINT pk_email_requests PRIMARY KEY (message_id, stored_at),"
        " ADD CONSTRAINT fk_email_requests_message_id_email_messages FOREIGN KEY (message_id)"
        " REFERENCES email_messages (id) ON DELETE CASCADE"
    )
    op.add_column("email_messages", sa.Column("tags", postgresql.JSONB(), nullable=True))
    op.execute(
        "UPDATE email_messages SET tags = caller.tags FROM ("
        " SELECT m.id, jsonb_agg(t) AS tags FROM email_messages m,"
        " jsonb_array_elements(CASE jsonb_typeof(m.request -> 'tags') WHEN 'array' THEN m.request -> 'tags'"
        " ELSE '[]' END) AS t"
        f" WHERE t ->> 'name' NOT IN {RESERVED_TAGS} GROUP BY m.id) AS caller"
        " WHERE email_messages.id = caller.id"
    )
    op.drop_column("email_messages", "request")


def _create_partitions(table: str, grain: str, with_rows: set[datetime], ahead: int) -> None:
    """The default partition, one per period holding rows, and the current period and ``ahead`` more."""
    op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    now = datetime.now(UTC)
    current = datetime(now.year, now.month, 1 if grain == "month" else now.day, tzinfo=UTC)
    starts = {*with_rows, current}
    for _ in range(ahead):
        current = _after(current, grain)
        starts.add(current)
    for start in sorted(starts):
        if start.year <= 1970:
            continue  # undated events stay in the default partition
        suffix = start.strftime("%Y%m" if grain == "month" else "%Y%m%d")
        op.execute(
            f"CREATE TABLE {table}_p{suffix} PARTITION OF {table}"
            f" FOR VALUES FROM ('{start.isoformat()}') TO ('{_after(start, grain).isoformat()}')"
        )


def _after(start: datetime, grain: str) -> datetime:
    if grain == "day":
        return start + timedelta(days=1)
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def downgrade() -> None:
    op.drop_table("metric_rollups")
    op.add_column(
        "email_messages",
        sa.Column("request", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
    )
    # Bodies retention dropped stay '{}', as a row without a stored request was before.
    op.execute(
        "UPDATE email_messages m SET request = r.request FROM email_requests r WHERE r.message_id = m.id"
    )
    op.drop_column("email_messages", "tags")
    op.drop_table("email_requests")
    op.execute("ALTER TABLE email_metrics RENAME TO email_metrics_partitioned")
    op.execute("ALTER TABLE webhook_events RENAME TO webhook_events_partitioned")
    op.execute(
        "ALTER TABLE email_metrics_partitioned DROP CONSTRAINT pk_email_metrics,"
        " DROP CONSTRAINT uq_email_metrics_webhook_event_id_occurred_at"
    )
    op.execute(
        "ALTER TABLE webhook_events_partitioned DROP CONSTRAINT pk_webhook_events,"
        " DROP CONSTRAINT uq_webhook_events_svix_id_occurred_at"
    )
    op.execute("DROP INDEX ix_webhook_events_unprocessed")
    op.execute(
        "CREATE TABLE webhook_events ("
        " id uuid DEFAULT gen_random_uuid() NOT NULL, svix_id text NOT NULL, type text NOT NULL,"
        " payload jsonb NOT NULL, received_at timestamptz DEFAULT now() NOT NULL, processed_at timestamptz,"
        " attempts integer DEFAULT 0 NOT NULL, error text,"
        " CONSTRAINT pk_webhook_events PRIMARY KEY (id),"
        " CONSTRAINT uq_webhook_events_svix_id UNIQUE (svix_id))"
    )
    op.execute(
        "CREATE INDEX ix_webhook_events_unprocessed ON webhook_events (received_at) WHERE processed_at IS NULL"
    )
    op.execute(
        f"INSERT INTO webhook_events ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS} FROM webhook_events_partitioned"
        " ON CONFLICT (svix_id) DO NOTHING"
    )
    op.execute("DROP TABLE webhook_events_partitioned")
    op.execute(_EMAIL_METRICS.replace(" PARTITION BY RANGE (occurred_at)", ""))
    op.execute(
        f"INSERT INTO email_metrics ({_METRIC_COLUMNS}) SELECT {_METRIC_COLUMNS} FROM email_metrics_partitioned"
    )
    op.execute("DROP TABLE email_metrics_partitioned")
    # Metrics whose event body retention dropped lose the link, as the old ON DELETE SET NULL did.
    op.execute(
        "UPDATE email_metrics m SET webhook_event_id = NULL WHERE webhook_event_id IS NOT NULL"
        " AND NOT EXISTS (SELECT FROM webhook_events e WHERE e.id = m.webhook_event_id)"
    )
    op.execute(
        _METRIC_KEYS.replace("PRIMARY KEY (id, occurred_at)", "PRIMARY KEY (id)")
        .replace(
            "uq_email_metrics_webhook_event_id_occurred_at UNIQUE (webhook_event_id, occurred_at)",
            "uq_email_metrics_webhook_event_id UNIQUE (webhook_event_id)",
        )
        .rstrip()
        + ",\n    ADD CONSTRAINT fk_email_metrics_webhook_event_id_webhook_events FOREIGN KEY (webhook_event_id)"
        " REFERENCES webhook_events (id) ON DELETE SET NULL"
    )
    for column in _METRIC_INDEXES:
        op.execute(f"CREATE INDEX ix_email_metrics_{column} ON email_metrics ({column})")
    op.execute(_METRIC_TRIGGER)
