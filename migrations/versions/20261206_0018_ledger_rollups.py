"""ledger_rollups: daily totals of the send ledger; a block range index on email_messages.created_at

Revision ID: 0018
Revises: 0017
One row per UTC day, organization, connector, task (or none) and status with its emails, rewritten
from the ledger (shared.partitions.ledger_rollups). The index lets a day's rollup read that day's
blocks only; built CONCURRENTLY. No data changes: the days before the upgrade are rolled up by beat
(the last two) and by retention before their rows go. docs/architecture.md, "Data lifecycle".

Create Date: 2026-12-06 04:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.index_builds import create_index_concurrently, drop_index_concurrently

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = (
    "scheduled",
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
    "cancelled",
)
INDEX = "ix_email_messages_created_at_brin"


def upgrade() -> None:
    op.create_table(
        "ledger_rollups",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("connector_id", sa.UUID(), nullable=False),
        sa.Column("task_id", sa.UUID(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("emails", sa.BigInteger(), nullable=False),
        sa.Column("rolled_up_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            f"status IN ({', '.join(repr(s) for s in STATUSES)})", name=op.f("ck_ledger_rollups_status")
        ),
        sa.UniqueConstraint(
            "day",
            "organization_id",
            "connector_id",
            "task_id",
            "status",
            name=op.f("uq_ledger_rollups_key"),
            postgresql_nulls_not_distinct=True,
        ),
    )
    with op.get_context().autocommit_block():
        create_index_concurrently(
            INDEX,
            "email_messages",
            ["created_at"],
            postgresql_using="brin",
            postgresql_with={"autosummarize": "on"},
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_concurrently(INDEX, "email_messages")
    op.drop_table("ledger_rollups")
