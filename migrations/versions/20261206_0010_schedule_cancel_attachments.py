"""scheduled and cancelled rows, scheduled_at, attachment bytes stored once per distinct content

Revision ID: 0010
Revises: 0009
Scheduled rows wait in the ledger (status ``scheduled``, their time in ``next_attempt_at``); a partial
index gives beat the due ones. ``email_attachments`` holds each distinct attachment once, by sha256.

Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.index_builds import create_index_concurrently, drop_index_concurrently

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "email_messages"
CHECK = "ck_email_messages_status"
SCHEDULED = "ix_email_messages_scheduled"
OLD_STATUSES = (
    "queued",
    "deferred",
    "sending",
    "sent",
    "delivery_delayed",
    "delivered",
    "bounced",
    "complained",
    "failed",
    "suppressed",
)
NEW_STATUSES = ("scheduled", *OLD_STATUSES, "cancelled")


def _status_check(statuses: Sequence[str]) -> None:
    op.drop_constraint(op.f(CHECK), TABLE, type_="check")
    listed = ", ".join(f"'{status}'" for status in statuses)
    # NOT VALID, then VALIDATE: the scan of existing rows holds no lock that blocks writers.
    op.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {CHECK} CHECK (status IN ({listed})) NOT VALID")
    op.execute(f"ALTER TABLE {TABLE} VALIDATE CONSTRAINT {CHECK}")


def upgrade() -> None:
    op.add_column(TABLE, sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(TABLE, sa.Column("attachment_digests", postgresql.ARRAY(sa.Text()), nullable=True))
    _status_check(NEW_STATUSES)
    op.create_table(
        "email_attachments",
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_email_attachments")),
    )
    with op.get_context().autocommit_block():
        create_index_concurrently(
            SCHEDULED, TABLE, ["next_attempt_at"], postgresql_where=sa.text("status = 'scheduled'")
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_concurrently(SCHEDULED, TABLE)
    op.drop_table("email_attachments")
    # Rows in the new statuses have no place in the old set: scheduled ones are queued, cancelled failed.
    op.execute(f"UPDATE {TABLE} SET status = 'queued', next_attempt_at = NULL WHERE status = 'scheduled'")
    op.execute(f"UPDATE {TABLE} SET status = 'failed' WHERE status = 'cancelled'")
    _status_check(OLD_STATUSES)
    op.drop_column(TABLE, "attachment_digests")
    op.drop_column(TABLE, "scheduled_at")
