"""email_messages: a final row leaves its queue; a task's recipients indexed until Resend names them

Revision ID: 0020
Revises: 0017
A trigger clears ``dispatch_key`` of a row that becomes final (existing final rows in one statement).
The task's recipient index becomes partial (``resend_email_id IS NULL``) beside a plain ``task_id``
index; built CONCURRENTLY (on a partitioned ledger, per partition). docs/architecture.md, "Indexes".

Create Date: 2026-12-06 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from shared.index_builds import create_index_concurrently, drop_index_concurrently

revision: str = "0020"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The statuses a row may still leave from (shared.models.OPEN_STATUSES, as of this revision).
_OPEN = "('scheduled', 'queued', 'deferred', 'sending')"

_FUNCTION = """
CREATE FUNCTION pilot_final_row_leaves_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.dispatch_key := NULL;
    RETURN NEW;
END $$
"""
# Nothing reads a final row's queue, and the row is kept 13 months. Whatever statement finalizes the
# row (the answer, a cancel, a suppression, reconcile, an event); the WHEN clause keeps the function
# off every other row.
_TRIGGER = f"""
CREATE TRIGGER email_messages_final_row_leaves_queue BEFORE INSERT OR UPDATE ON email_messages
    FOR EACH ROW WHEN (NEW.dispatch_key IS NOT NULL AND NEW.status NOT IN {_OPEN})
    EXECUTE FUNCTION pilot_final_row_leaves_queue()
"""
# updated_at kept: the rows did not change for anyone who reads them.
_CONVERT = (
    f"UPDATE email_messages SET dispatch_key = NULL WHERE dispatch_key IS NOT NULL AND status NOT IN {_OPEN}"
)


TABLE = "email_messages"
LOWER_RECIPIENT = sa.text("lower(recipient)")
TASK = "ix_email_messages_task_id"
TASK_UNNAMED = "ix_email_messages_task_id_lower_recipient_no_email_id"
TASK_RECIPIENT = "ix_email_messages_task_id_lower_recipient"


def upgrade() -> None:
    op.execute(_FUNCTION)
    op.execute(_TRIGGER)
    op.execute(_CONVERT)
    with op.get_context().autocommit_block():
        _create(TASK, ["task_id"])
        _create(
            TASK_UNNAMED, ["task_id", LOWER_RECIPIENT], postgresql_where=sa.text("resend_email_id IS NULL")
        )
        _drop(TASK_RECIPIENT)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        _create(TASK_RECIPIENT, ["task_id", LOWER_RECIPIENT])
        _drop(TASK_UNNAMED)
        _drop(TASK)
    # The keys cleared are not restored: no statement reads a final row's queue.
    op.execute("DROP TRIGGER IF EXISTS email_messages_final_row_leaves_queue ON email_messages")
    op.execute("DROP FUNCTION IF EXISTS pilot_final_row_leaves_queue()")


def _partitioned() -> bool:
    if op.get_context().as_sql:
        return False
    query = sa.text("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(:table)")
    return bool(op.get_bind().scalar(query, {"table": TABLE}))


def _create(name: str, columns: list[str | sa.TextClause], **kw: Any) -> None:
    if _partitioned():
        op.create_index(name, TABLE, columns, if_not_exists=True, **kw)
    else:
        create_index_concurrently(name, TABLE, columns, **kw)


def _drop(name: str) -> None:
    if _partitioned():
        op.drop_index(name, table_name=TABLE, if_exists=True)
    else:
        drop_index_concurrently(name, TABLE)
