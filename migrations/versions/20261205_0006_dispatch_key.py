"""email_messages.dispatch_key: the send queue of each API key

Revision ID: 0006
Revises: 0005
``dispatch_key`` names the key a row is sent with (its hash). Small partial indexes give a key's
queued rows oldest first, and its deferred rows and units due again by their time. Rows already in
the ledger get theirs from beat (sweep, release, reconcile). See docs/architecture.md, "The ledger".

Create Date: 2026-12-05 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.index_builds import create_index_concurrently, drop_index_concurrently

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "email_messages"
QUEUED = "ix_email_messages_dispatch_key_queued"
DEFERRED = "ix_email_messages_dispatch_key_deferred"
SENDING = "ix_email_messages_dispatch_key_sending"


def upgrade() -> None:
    op.add_column(TABLE, sa.Column("dispatch_key", sa.Text(), nullable=True))
    with op.get_context().autocommit_block():
        create_index_concurrently(
            QUEUED, TABLE, ["dispatch_key", "created_at"], postgresql_where=sa.text("status = 'queued'")
        )
        for name, status in ((DEFERRED, "deferred"), (SENDING, "sending")):
            create_index_concurrently(
                name,
                TABLE,
                ["dispatch_key", "next_attempt_at"],
                postgresql_where=sa.text(f"status = '{status}'"),
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name in (SENDING, DEFERRED, QUEUED):
            drop_index_concurrently(name, TABLE)
    op.drop_column(TABLE, "dispatch_key")
