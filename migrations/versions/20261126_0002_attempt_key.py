"""email_messages.attempt_key: the idempotency key of a row's first attempt

Revision ID: 0002
Revises: 0001
A row whose attempt may have reached Resend must be retried under the same key with the same body:
alone (its own key) or in the very batch it went out in (the batch's key). The key of that first
attempt, kept on the row, lets any later task rebuild the unit, whatever rows it was given.

Create Date: 2026-11-26 01:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("email_messages", sa.Column("attempt_key", sa.Text(), nullable=True))
    op.create_index(op.f("ix_email_messages_attempt_key"), "email_messages", ["attempt_key"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_email_messages_attempt_key"), table_name="email_messages")
    op.drop_column("email_messages", "attempt_key")
