"""email_messages: partial indexes for the waiting rows instead of the status index; fewer indexes

Revision ID: 0017
Revises: 0016
A status change rewrites every index the row qualifies for, so the waiting rows get partial indexes
(deferred by time and by connector, queued by last change, in flight by connector) instead of the
status index; the email id and attempt key are indexed once set; the connector alone (no sent_at);
the key's unique index goes (the id, derived from the key, keeps it once). webhook_events: events
with an error. No data changes; built CONCURRENTLY. docs/architecture.md, "Indexes".

Create Date: 2026-12-06 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.index_builds import create_index_concurrently, drop_index_concurrently

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "email_messages"
KEY_CONSTRAINT = "uq_email_messages_idempotency_key"
DEFERRED = sa.text("status = 'deferred'")


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_concurrently(
            "ix_email_messages_deferred", TABLE, ["next_attempt_at"], postgresql_where=DEFERRED
        )
        create_index_concurrently(
            "ix_email_messages_connector_id_priority_deferred",
            TABLE,
            ["connector_id", "priority", "next_attempt_at"],
            postgresql_where=DEFERRED,
        )
        create_index_concurrently(
            "ix_email_messages_queued_updated_at",
            TABLE,
            ["updated_at"],
            postgresql_where=sa.text("status = 'queued'"),
        )
        create_index_concurrently(
            "ix_email_messages_connector_id_sending",
            TABLE,
            ["connector_id", "updated_at"],
            postgresql_where=sa.text("status = 'sending'"),
        )
        create_index_concurrently("ix_email_messages_connector_id", TABLE, ["connector_id"])
        create_index_concurrently(
            "ix_email_messages_resend_email_id_not_null",
            TABLE,
            ["resend_email_id"],
            postgresql_where=sa.text("resend_email_id IS NOT NULL"),
        )
        create_index_concurrently(
            "ix_email_messages_attempt_key_not_null",
            TABLE,
            ["attempt_key"],
            postgresql_where=sa.text("attempt_key IS NOT NULL"),
        )
        # A partitioned table cannot be indexed CONCURRENTLY: built per partition in one statement
        # (they are days of events), and every partition made later inherits it.
        op.create_index(
            "ix_webhook_events_with_error",
            "webhook_events",
            ["received_at"],
            postgresql_where=sa.text("error IS NOT NULL"),
            if_not_exists=True,
        )
        for name in (
            "ix_email_messages_status_next_attempt_at",
            "ix_email_messages_connector_id_sent_at",
            "ix_email_messages_resend_email_id",
            "ix_email_messages_attempt_key",
        ):
            drop_index_concurrently(name, TABLE)
        op.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS {KEY_CONSTRAINT}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        _restore_key_constraint()
        create_index_concurrently("ix_email_messages_attempt_key", TABLE, ["attempt_key"])
        create_index_concurrently("ix_email_messages_resend_email_id", TABLE, ["resend_email_id"])
        create_index_concurrently(
            "ix_email_messages_connector_id_sent_at", TABLE, ["connector_id", "sent_at"]
        )
        create_index_concurrently(
            "ix_email_messages_status_next_attempt_at", TABLE, ["status", "next_attempt_at"]
        )
        op.drop_index("ix_webhook_events_with_error", table_name="webhook_events", if_exists=True)
        for name in (
            "ix_email_messages_attempt_key_not_null",
            "ix_email_messages_resend_email_id_not_null",
            "ix_email_messages_connector_id",
            "ix_email_messages_connector_id_sending",
            "ix_email_messages_queued_updated_at",
            "ix_email_messages_connector_id_priority_deferred",
            "ix_email_messages_deferred",
        ):
            drop_index_concurrently(name, TABLE)


def _restore_key_constraint() -> None:
    """The idempotency key's unique constraint again, its index built without blocking writes."""
    context = op.get_context()
    if not context.as_sql:
        found = op.get_bind().scalar(
            sa.text("SELECT 1 FROM pg_constraint WHERE conname = :name"), {"name": KEY_CONSTRAINT}
        )
        if found:
            return
        drop_index_concurrently(KEY_CONSTRAINT, TABLE)  # what an interrupted build left
    op.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {KEY_CONSTRAINT} ON {TABLE} (idempotency_key)")
    op.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {KEY_CONSTRAINT} UNIQUE USING INDEX {KEY_CONSTRAINT}")
