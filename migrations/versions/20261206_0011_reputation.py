"""reputation guard: rolling bounce and complaint counts, each scope's state, organizations' thresholds

Revision ID: 0011
Revises: 0010
New tables only: nothing existing is rewritten or locked for long.

Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPES = "scope IN ('organization', 'connector', 'campaign')"
STATES = "state IN ('ok', 'warning', 'paused')"


def upgrade() -> None:
    op.create_table(
        "reputation_marks",
        sa.Column("message_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("counted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("hard_bounce", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("complaint", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["email_messages.id"],
            name="fk_reputation_marks_message_id_email_messages",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", name="pk_reputation_marks"),
    )
    op.create_table(
        "reputation_counts",
        sa.Column("scope_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("recipients", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("hard_bounces", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("complaints", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint(SCOPES, name="ck_reputation_counts_scope"),
        sa.PrimaryKeyConstraint("scope_id", "bucket", name="pk_reputation_counts"),
    )
    op.create_table(
        "reputation_states",
        sa.Column("scope_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("organization_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("state", sa.Text(), server_default="ok", nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("rates", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resume_bucket", sa.Integer(), nullable=True),
        sa.Column("offset_recipients", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("offset_hard_bounces", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("offset_complaints", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(SCOPES, name="ck_reputation_states_scope"),
        sa.CheckConstraint(STATES, name="ck_reputation_states_state"),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_reputation_states_organization_id_organizations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("scope_id", name="pk_reputation_states"),
    )
    op.create_index("ix_reputation_states_organization_id", "reputation_states", ["organization_id"])
    op.create_table(
        "reputation_policies",
        sa.Column("organization_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("warn_bounce_rate", sa.Float(), nullable=True),
        sa.Column("pause_bounce_rate", sa.Float(), nullable=True),
        sa.Column("warn_complaint_rate", sa.Float(), nullable=True),
        sa.Column("pause_complaint_rate", sa.Float(), nullable=True),
        sa.Column("min_volume", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_reputation_policies_organization_id_organizations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", name="pk_reputation_policies"),
    )


def downgrade() -> None:
    op.drop_table("reputation_policies")
    op.drop_index("ix_reputation_states_organization_id", table_name="reputation_states")
    op.drop_table("reputation_states")
    op.drop_table("reputation_counts")
    op.drop_table("reputation_marks")
