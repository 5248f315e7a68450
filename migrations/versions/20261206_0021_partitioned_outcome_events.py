"""outcome_events (the outbox) partitioned by day of created_at, dropped a while after publishing

Revision ID: 0021
Revises: 0020
Rebuilt beside the old table (a default partition, one per day holding rows, today and the next
days), rows moved in one INSERT ... SELECT, then its keys and indexes made again. Primary key
(id, created_at): the id alone can no longer be unique, so every writer (the two triggers here, the
reputation guard in shared.reputation.events) inserts an id only when no partition holds it yet, each
write serialized by the row whose change it reports. Exclusive locks: run it in a quiet hour.

Create Date: 2026-12-06 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "outcome_events"
#: Days created beyond the current one, as shared.partitions.tables declares the outbox.
DAYS_AHEAD = 3

_INDEXES = (
    f"CREATE INDEX ix_{TABLE}_message_id ON {TABLE} (message_id)",
    f"CREATE INDEX ix_{TABLE}_unpublished ON {TABLE} (created_at) WHERE published_at IS NULL",
    f"ALTER TABLE {TABLE} ADD CONSTRAINT fk_{TABLE}_organization_id_organizations FOREIGN KEY"
    " (organization_id) REFERENCES organizations (id) ON DELETE CASCADE",
)

_STATUS_FUNCTION = """
CREATE OR REPLACE FUNCTION pilot_outcome_of_status() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    event_id uuid;
BEGIN
    IF NEW.outcomes_queue IS NULL OR NEW.status NOT IN ('queued', 'deferred', 'sent', 'failed', 'suppressed', 'scheduled', 'cancelled') THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.status = OLD.status
       AND (NEW.status <> 'deferred' OR NEW.next_attempt_at IS NOT DISTINCT FROM OLD.next_attempt_at) THEN
        RETURN NULL;
    END IF;
    event_id := md5(NEW.id::text || '/' || NEW.status || '/' || NEW.attempts || '/'
                    || coalesce(NEW.next_attempt_at::text, ''))::uuid;
    INSERT INTO outcome_events (id, message_id, queue, kind, until, reason)
    SELECT event_id, NEW.id, NEW.outcomes_queue, NEW.status,
           CASE WHEN NEW.status IN ('deferred', 'scheduled') THEN NEW.next_attempt_at END,
           CASE WHEN NEW.status IN ('deferred', 'failed', 'suppressed', 'cancelled') THEN NEW.last_error END
    {guard}
    RETURN NULL;
END $$
"""
# The same change written again (the row's lock serializes the writers, and this statement's snapshot
# sees the earlier one's commit): no second event. No event is older than its ledger row, and a row
# just inserted has none yet (not looked for).
_STATUS_GUARD = """WHERE TG_OP = 'INSERT' OR NOT EXISTS (SELECT FROM outcome_events o
                      WHERE o.id = event_id AND o.created_at >= NEW.created_at)
    ON CONFLICT DO NOTHING;"""
_METRIC_FUNCTION = """
CREATE OR REPLACE FUNCTION pilot_outcome_of_metric() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.event NOT IN ('delivered', 'delivery_delayed', 'bounced', 'complained', 'opened', 'clicked',
                         'unsubscribed') THEN
        RETURN NULL;
    END IF;
    INSERT INTO outcome_events (id, message_id, queue, kind, occurred_at, reason)
    SELECT NEW.id, m.id, m.outcomes_queue, NEW.event, NEW.occurred_at,
           CASE WHEN NEW.event = 'bounced' THEN NEW.metadata ->> 'bounce_type'
                WHEN NEW.event = 'unsubscribed' THEN coalesce(nullif(NEW.metadata ->> 'topic', ''), 'everything')
           END
    FROM email_messages m
    WHERE m.id = NEW.message_id AND m.outcomes_queue IS NOT NULL
    {guard}
    RETURN NULL;
END $$
"""
# A metric is written once (its own id); the guard keeps that so should it ever be written again.
_METRIC_GUARD = """AND NOT EXISTS (SELECT FROM outcome_events o WHERE o.id = NEW.id AND o.created_at >= m.created_at)
    ON CONFLICT DO NOTHING;"""
_UNIQUE_ID_GUARD = "ON CONFLICT (id) DO NOTHING;"


def upgrade() -> None:
    op.execute(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_unpartitioned")
    op.execute(
        f"CREATE TABLE {TABLE} (LIKE {TABLE}_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        " PARTITION BY RANGE (created_at)"
    )
    days = op.get_bind().scalars(
        sa.text(
            f"SELECT DISTINCT date_trunc('day', created_at AT TIME ZONE 'UTC') FROM {TABLE}_unpartitioned"
        )
    )
    _create_partitions({day.replace(tzinfo=UTC) for day in days})
    op.execute(f"INSERT INTO {TABLE} SELECT * FROM {TABLE}_unpartitioned")
    op.execute(f"DROP TABLE {TABLE}_unpartitioned")
    op.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT pk_{TABLE} PRIMARY KEY (id, created_at)")
    for statement in _INDEXES:
        op.execute(statement)
    op.execute(_STATUS_FUNCTION.format(guard=_STATUS_GUARD))
    op.execute(_METRIC_FUNCTION.format(guard=_METRIC_GUARD))


def downgrade() -> None:
    op.execute(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_partitioned")
    op.execute(f"CREATE TABLE {TABLE} (LIKE {TABLE}_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    op.execute(f"INSERT INTO {TABLE} SELECT * FROM {TABLE}_partitioned")
    op.execute(f"DROP TABLE {TABLE}_partitioned")
    op.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT pk_{TABLE} PRIMARY KEY (id)")
    for statement in _INDEXES:
        op.execute(statement)
    op.execute(_STATUS_FUNCTION.format(guard=_UNIQUE_ID_GUARD))
    op.execute(_METRIC_FUNCTION.format(guard=_UNIQUE_ID_GUARD))


def _create_partitions(with_rows: set[datetime]) -> None:
    """The default partition, one per day holding rows, and today and ``DAYS_AHEAD`` more."""
    op.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
    now = datetime.now(UTC)
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    starts = {*with_rows, *(today + timedelta(days=ahead) for ahead in range(DAYS_AHEAD + 1))}
    for start in sorted(starts):
        op.execute(
            f"CREATE TABLE {TABLE}_p{start.strftime('%Y%m%d')} PARTITION OF {TABLE}"
            f" FOR VALUES FROM ('{start.isoformat()}') TO ('{(start + timedelta(days=1)).isoformat()}')"
        )
