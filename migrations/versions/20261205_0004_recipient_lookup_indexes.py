"""email_messages (organization_id, lower(recipient)) and (task_id, lower(recipient)) indexes

Revision ID: 0004
Revises: 0003
Every soft bounce reads the recipient's delivery history in its organization
(``worker.event_suppression.delivery_history``), and an event found by its tags only looks its
recipient up in its task (``worker.event_processing._by_tags``). Both match ``lower(recipient)``,
which no index covered: a sequential scan of the ledger per event, linear in its size. The
expression indexes answer both from the recipient's own entries. Their leading columns serve every
lookup by organization or task alone, so the single-column indexes are dropped (no index more to
maintain per insert).

Built ``CONCURRENTLY`` (the ledger is large and written all the time), outside the migration's
transaction. A build that was interrupted leaves an invalid index behind; a rerun drops it and
builds it again.

Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "email_messages"
ORGANIZATION_RECIPIENT = "ix_email_messages_organization_id_lower_recipient"
TASK_RECIPIENT = "ix_email_messages_task_id_lower_recipient"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        _create_concurrently(ORGANIZATION_RECIPIENT, ["organization_id", sa.text("lower(recipient)")])
        _create_concurrently(TASK_RECIPIENT, ["task_id", sa.text("lower(recipient)")])
        _drop_concurrently("ix_email_messages_organization_id")
        _drop_concurrently("ix_email_messages_task_id")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        _create_concurrently("ix_email_messages_organization_id", ["organization_id"])
        _create_concurrently("ix_email_messages_task_id", ["task_id"])
        _drop_concurrently(ORGANIZATION_RECIPIENT)
        _drop_concurrently(TASK_RECIPIENT)


def _create_concurrently(name: str, columns: list[str | sa.TextClause]) -> None:
    if _is_invalid(name):
        _drop_concurrently(name)
    op.create_index(name, TABLE, columns, unique=False, postgresql_concurrently=True, if_not_exists=True)


def _drop_concurrently(name: str) -> None:
    op.drop_index(name, table_name=TABLE, postgresql_concurrently=True, if_exists=True)


def _is_invalid(name: str) -> bool:
    """Whether index ``name`` exists but is unusable (what an interrupted concurrent build leaves)."""
    if op.get_context().as_sql:
        return False  # offline (--sql): no database to ask
    query = sa.text("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)")
    return bool(op.get_bind().scalar(query, {"name": name}))
