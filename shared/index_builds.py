"""Index builds for migrations on large, busy tables: ``CONCURRENTLY``, outside the transaction.

Call these inside ``op.get_context().autocommit_block()``. A concurrent build that was interrupted
leaves an invalid index behind; building again drops it first, so a migration can simply be rerun.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op


def create_index_concurrently(name: str, table: str, columns: list[str | sa.TextClause], **kw: Any) -> None:
    """Build index ``name`` on ``table`` without blocking writes (``kw``: e.g. ``postgresql_where``)."""
    if _is_invalid(name):
        drop_index_concurrently(name, table)
    op.create_index(
        name, table, columns, unique=False, postgresql_concurrently=True, if_not_exists=True, **kw
    )


def drop_index_concurrently(name: str, table: str) -> None:
    """Drop index ``name`` of ``table`` without blocking writes (nothing if it does not exist)."""
    op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)


def _is_invalid(name: str) -> bool:
    """Whether index ``name`` exists but is unusable (what an interrupted concurrent build leaves)."""
    if op.get_context().as_sql:
        return False  # offline (--sql): no database to ask
    query = sa.text("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)")
    return bool(op.get_bind().scalar(query, {"name": name}))
