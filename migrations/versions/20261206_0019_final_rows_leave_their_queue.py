"""email_messages: a final row leaves its queue; a task's recipients indexed until Resend names them

Revision ID: 0019
Revises: 0018
A trigger clears ``dispatch_key`` of a row that becomes final (existing final rows by page ranges).
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

revision: str = "0019"
down_revision: str | None = "0018"
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
# Existing final rows, a range of heap pages per statement (each its own transaction, after the
# trigger's): a single statement would lock every final row at once, events waiting on them. Rows a
# statement moves to a later page are already clear. updated_at kept: nobody sees them change.
_CONVERT = (
    "UPDATE email_messages SET dispatch_key = NULL WHERE dispatch_key IS NOT NULL"
    f" AND status NOT IN {_OPEN}" + " AND ctid >= '({start},0)'::tid AND ctid < '({end},0)'::tid"
)
# The heap's pages (a partitioned ledger's largest partition's: a ctid range applies to each).
_PAGES = sa.text(
    "SELECT coalesce(max(pg_relation_size(relid)), pg_relation_size('email_messages'))"
    " / current_setting('block_size')::int FROM pg_partition_tree('email_messages') WHERE isleaf"
)
PAGES_PER_STATEMENT = 2000


TABLE = "email_messages"
LOWER_RECIPIENT = sa.text("lower(recipient)")
TASK = "ix_email_messages_task_id"
TASK_UNNAMED = "ix_email_messages_task_id_lower_recipient_no_email_id"
TASK_RECIPIENT = "ix_email_messages_task_id_lower_recipient"


def upgrade() -> None:
    op.execute(_FUNCTION)
    op.execute(_TRIGGER)
    with op.get_context().autocommit_block():
        _convert()
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


def _convert() -> None:
    if op.get_context().as_sql:  # offline: no pages to count
        op.execute(_CONVERT.format(start=0, end=2**31 - 1))
        return
    pages = int(op.get_bind().scalar(_PAGES) or 0)
    for start in range(0, pages + 1, PAGES_PER_STATEMENT):
        op.execute(_CONVERT.format(start=start, end=start + PAGES_PER_STATEMENT))


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
