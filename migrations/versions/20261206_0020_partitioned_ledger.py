"""email_messages partitioned by month; its marks folded into message_marks, partitioned alike

Revision ID: 0020
Revises: 0019
Rebuilt beside the old table (a default partition, one per month holding rows, this month and the
next), rows moved in one INSERT ... SELECT, then its keys, indexes and triggers made again as the
catalog held them. Primary key (id, created_at). The foreign keys to the ledger go; a statement
trigger deletes a deleted row's dependants instead. delivery_marks and reputation_marks fold into
message_marks, partitioned by its ledger row's month. Exclusive locks: run it in a quiet hour.

Create Date: 2026-12-06 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "email_messages"
#: Months created beyond the current one, as shared.partitions.tables declares the ledger.
MONTHS_AHEAD = 1
#: The tables whose rows belong to a ledger row (``message_id``) and had a cascading foreign key to it.
REFERENCING = ("email_requests", "email_metrics", "outcome_events")
#: What a trigger deletes with a deleted ledger row.
DEPENDANTS = (*REFERENCING, "message_marks")

_MESSAGE_MARKS = """
CREATE TABLE message_marks (
    message_id uuid NOT NULL,
    message_created_at timestamptz NOT NULL,
    kinds integer DEFAULT 0 NOT NULL,
    bucket integer,
    counted boolean DEFAULT false NOT NULL,
    hard_bounce boolean DEFAULT false NOT NULL,
    complaint boolean DEFAULT false NOT NULL,
    campaign_bucket integer
) PARTITION BY RANGE (message_created_at)
"""
_FOLD_MARKS = """
INSERT INTO message_marks
    (message_id, message_created_at, kinds, bucket, counted, hard_bounce, complaint, campaign_bucket)
SELECT m.id, m.created_at, coalesce(d.kinds, 0), r.bucket, coalesce(r.counted, false),
       coalesce(r.hard_bounce, false), coalesce(r.complaint, false), r.campaign_bucket
FROM delivery_marks d FULL JOIN reputation_marks r ON r.message_id = d.message_id
JOIN email_messages m ON m.id = coalesce(d.message_id, r.message_id)
"""
_DELIVERY_MARKS = """
CREATE TABLE delivery_marks (
    message_id uuid NOT NULL,
    kinds integer DEFAULT 0 NOT NULL,
    CONSTRAINT pk_delivery_marks PRIMARY KEY (message_id)
)
"""
_REPUTATION_MARKS = """
CREATE TABLE reputation_marks (
    message_id uuid NOT NULL,
    bucket integer NOT NULL,
    counted boolean DEFAULT false NOT NULL,
    hard_bounce boolean DEFAULT false NOT NULL,
    complaint boolean DEFAULT false NOT NULL,
    campaign_bucket integer,
    CONSTRAINT pk_reputation_marks PRIMARY KEY (message_id)
)
"""

_DEPENDANTS_DELETE_FUNCTION = (
    "CREATE FUNCTION pilot_ledger_dependants_delete() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
    + "".join(
        f"    DELETE FROM {table} WHERE message_id IN (SELECT id FROM old_rows);\n" for table in DEPENDANTS
    )
    + "    RETURN NULL;\nEND $$"
)
_DEPENDANTS_DELETE_TRIGGER = f"""
CREATE TRIGGER email_messages_dependants_delete AFTER DELETE ON {TABLE}
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION pilot_ledger_dependants_delete()
"""


def upgrade() -> None:
    schema = _Schema.of_ledger()
    for table in (*REFERENCING, "delivery_marks", "reputation_marks"):
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT fk_{table}_message_id_email_messages")
    op.execute(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_unpartitioned")
    op.execute(
        f"CREATE TABLE {TABLE} (LIKE {TABLE}_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        " PARTITION BY RANGE (created_at)"
    )
    months = op.get_bind().scalars(
        sa.text(
            f"SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC') FROM {TABLE}_unpartitioned"
        )
    )
    with_rows = {month.replace(tzinfo=UTC) for month in months}
    _create_partitions(TABLE, with_rows)
    op.execute(f"INSERT INTO {TABLE} SELECT * FROM {TABLE}_unpartitioned")
    op.execute(f"DROP TABLE {TABLE}_unpartitioned")
    op.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT pk_{TABLE} PRIMARY KEY (id, created_at)")
    schema.restore()
    op.execute(_MESSAGE_MARKS)
    _create_partitions("message_marks", with_rows)
    op.execute(_FOLD_MARKS)
    op.execute(
        "ALTER TABLE message_marks ADD CONSTRAINT pk_message_marks PRIMARY KEY (message_id, message_created_at)"
    )
    op.execute("DROP TABLE delivery_marks, reputation_marks")
    op.execute(_DEPENDANTS_DELETE_FUNCTION)
    op.execute(_DEPENDANTS_DELETE_TRIGGER)


def downgrade() -> None:
    op.execute(f"DROP TRIGGER email_messages_dependants_delete ON {TABLE}")
    op.execute("DROP FUNCTION pilot_ledger_dependants_delete()")
    schema = _Schema.of_ledger()
    op.execute(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_partitioned")
    op.execute(f"CREATE TABLE {TABLE} (LIKE {TABLE}_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    op.execute(f"INSERT INTO {TABLE} SELECT * FROM {TABLE}_partitioned")
    op.execute(f"DROP TABLE {TABLE}_partitioned")
    op.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT pk_{TABLE} PRIMARY KEY (id)")
    schema.restore()
    op.execute(_DELIVERY_MARKS)
    op.execute(_REPUTATION_MARKS)
    op.execute("INSERT INTO delivery_marks SELECT message_id, kinds FROM message_marks WHERE kinds <> 0")
    op.execute(
        "INSERT INTO reputation_marks SELECT message_id, bucket, counted, hard_bounce, complaint, campaign_bucket"
        " FROM message_marks WHERE bucket IS NOT NULL"
    )
    op.execute("DROP TABLE message_marks")
    for table in (*REFERENCING, "delivery_marks", "reputation_marks"):
        # Rows whose ledger row retention dropped would have gone with it under the cascade.
        op.execute(
            f"DELETE FROM {table} d WHERE message_id IS NOT NULL"
            f" AND NOT EXISTS (SELECT FROM {TABLE} m WHERE m.id = d.message_id)"
        )
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT fk_{table}_message_id_email_messages FOREIGN KEY (message_id)"
            f" REFERENCES {TABLE} (id) ON DELETE CASCADE"
        )


class _Schema:
    """The ledger's foreign keys, indexes (its primary key apart) and triggers, as the catalog defines
    them, to be made again on the rebuilt table of the same name."""

    def __init__(self, statements: list[str]) -> None:
        self.statements = statements

    @classmethod
    def of_ledger(cls) -> _Schema:
        bind = op.get_bind()
        foreign_keys = [
            f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} {definition}"
            for name, definition in bind.execute(
                sa.text(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                    " WHERE conrelid = CAST(:table AS regclass) AND contype = 'f' ORDER BY conname"
                ),
                {"table": TABLE},
            )
        ]
        indexes = bind.scalars(
            sa.text(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = :table"
                " AND indexname <> :primary_key ORDER BY indexname"
            ),
            {"table": TABLE, "primary_key": f"pk_{TABLE}"},
        ).all()
        triggers = bind.scalars(
            sa.text(
                "SELECT pg_get_triggerdef(oid) FROM pg_trigger"
                " WHERE tgrelid = CAST(:table AS regclass) AND NOT tgisinternal ORDER BY tgname"
            ),
            {"table": TABLE},
        ).all()
        return cls([*foreign_keys, *indexes, *triggers])

    def restore(self) -> None:
        for statement in self.statements:
            op.execute(statement)


def _create_partitions(table: str, with_rows: set[datetime]) -> None:
    """The default partition, one per month holding rows, and the current month and ``MONTHS_AHEAD``
    more."""
    op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    now = datetime.now(UTC)
    current = datetime(now.year, now.month, 1, tzinfo=UTC)
    starts = {*with_rows, current}
    for _ in range(MONTHS_AHEAD):
        current = _after(current)
        starts.add(current)
    for start in sorted(starts):
        op.execute(
            f"CREATE TABLE {table}_p{start.strftime('%Y%m')} PARTITION OF {table}"
            f" FOR VALUES FROM ('{start.isoformat()}') TO ('{_after(start).isoformat()}')"
        )


def _after(start: datetime) -> datetime:
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
