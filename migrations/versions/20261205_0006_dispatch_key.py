"""email_messages.dispatch_key: the send queue of each API key

Revision ID: 0006
Revises: 0005
Rows of one Resend API key leave together, up to 100 a request, whatever their connector or task.
``dispatch_key`` names the key a row is sent with (its hash); partial indexes give a key's queued
rows oldest first, and its deferred rows and its units due again (status ``sending``,
``next_attempt_at`` as the lease or the retry time) by the time they are due. They are small: they
hold only the rows waiting to go.

Rows already in the ledger have no ``dispatch_key``: beat's sweep, release and reconcile give the
open ones theirs (from their connector's key) and hand them to the dispatcher.

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
