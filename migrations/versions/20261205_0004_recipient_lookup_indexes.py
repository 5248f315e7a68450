"""email_messages (organization_id, lower(recipient)) and (task_id, lower(recipient)) indexes

Revision ID: 0004
Revises: 0003
The soft-bounce history and an event found by its tags match ``lower(recipient)``, which no index
covered (a scan of the ledger per event). The leading columns serve lookups by organization or task
alone, so the single-column indexes are dropped. Built ``CONCURRENTLY``, outside the transaction; a
rerun drops what an interrupted build left. See docs/architecture.md, "The ledger".

Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.index_builds import create_index_concurrently, drop_index_concurrently

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "email_messages"
ORGANIZATION_RECIPIENT = "ix_email_messages_organization_id_lower_recipient"
TASK_RECIPIENT = "ix_email_messages_task_id_lower_recipient"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_concurrently(
            ORGANIZATION_RECIPIENT, TABLE, ["organization_id", sa.text("lower(recipient)")]
        )
        create_index_concurrently(TASK_RECIPIENT, TABLE, ["task_id", sa.text("lower(recipient)")])
        drop_index_concurrently("ix_email_messages_organization_id", TABLE)
        drop_index_concurrently("ix_email_messages_task_id", TABLE)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_concurrently("ix_email_messages_organization_id", TABLE, ["organization_id"])
        create_index_concurrently("ix_email_messages_task_id", TABLE, ["task_id"])
        drop_index_concurrently(ORGANIZATION_RECIPIENT, TABLE)
        drop_index_concurrently(TASK_RECIPIENT, TABLE)
