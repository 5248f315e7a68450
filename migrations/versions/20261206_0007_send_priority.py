"""email_messages.priority: transactional rows leave their key's queue before bulk ones

Revision ID: 0007
Revises: 0006
Rows written before it are ``bulk``: they keep their order and cannot use the transactional reserve.
The queue's indexes gain the class as their second column, so each class is read oldest first.

Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.index_builds import create_index_concurrently, drop_index_concurrently

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "email_messages"
OLD_QUEUED = "ix_email_messages_dispatch_key_queued"
OLD_DEFERRED = "ix_email_messages_dispatch_key_deferred"
QUEUED = "ix_email_messages_dispatch_key_priority_queued"
DEFERRED = "ix_email_messages_dispatch_key_priority_deferred"
CHECK = "ck_email_messages_priority"


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column(TABLE, sa.Column("priority", sa.Text(), server_default="bulk", nullable=False))
    # NOT VALID, then VALIDATE: the scan of existing rows holds no lock that blocks writers.
    op.execute(
        f"ALTER TABLE {TABLE} ADD CONSTRAINT {CHECK} CHECK (priority IN ('transactional', 'bulk')) NOT VALID"
    )
    op.execute(f"ALTER TABLE {TABLE} VALIDATE CONSTRAINT {CHECK}")
    with op.get_context().autocommit_block():
        create_index_concurrently(
            QUEUED,
            TABLE,
            ["dispatch_key", "priority", "created_at"],
            postgresql_where=sa.text("status = 'queued'"),
        )
        create_index_concurrently(
            DEFERRED,
            TABLE,
            ["dispatch_key", "priority", "next_attempt_at"],
            postgresql_where=sa.text("status = 'deferred'"),
        )
        drop_index_concurrently(OLD_QUEUED, TABLE)
        drop_index_concurrently(OLD_DEFERRED, TABLE)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_concurrently(
            OLD_QUEUED, TABLE, ["dispatch_key", "created_at"], postgresql_where=sa.text("status = 'queued'")
        )
        create_index_concurrently(
            OLD_DEFERRED,
            TABLE,
            ["dispatch_key", "next_attempt_at"],
            postgresql_where=sa.text("status = 'deferred'"),
        )
        drop_index_concurrently(QUEUED, TABLE)
        drop_index_concurrently(DEFERRED, TABLE)
    op.drop_constraint(op.f(CHECK), TABLE, type_="check")
    op.drop_column(TABLE, "priority")
