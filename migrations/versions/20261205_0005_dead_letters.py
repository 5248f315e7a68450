"""dead_letters: broker messages a worker refused, with the reason

Revision ID: 0005
Revises: 0004
A message the worker cannot run (not JSON, not a task message, an unknown task, arguments that do
not fit) is acknowledged so it is never redelivered, and kept here with its reason, headers and
body (capped), so an operator can see and replay what an upstream app sent. The unique key on the
message id and the body digest makes recording a redelivered message add no second row.

Create Date: 2026-12-05 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("task_name", sa.Text(), nullable=True),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("queue", sa.Text(), nullable=True),
        sa.Column("exchange", sa.Text(), nullable=True),
        sa.Column("content_type", sa.Text(), nullable=True),
        sa.Column("content_encoding", sa.Text(), nullable=True),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("body_size", sa.BigInteger(), nullable=False),
        sa.Column("body_sha256", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "reason IN ('content_type', 'undecodable', 'malformed', 'unknown_task', 'arguments', 'unexpected')",
            name=op.f("ck_dead_letters_reason"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.UniqueConstraint(
            "message_id",
            "body_sha256",
            name=op.f("uq_dead_letters_message_id_body_sha256"),
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_index(op.f("ix_dead_letters_received_at"), "dead_letters", ["received_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_dead_letters_received_at"), table_name="dead_letters")
    op.drop_table("dead_letters")
