"""Topics: suppression entries per topic, and the topic of each email

Revision ID: 0008
Revises: 0007
``suppression_list.topic`` is the topic an entry stops ('' : every email, as every existing entry);
unique on (organization, address, topic), the index built CONCURRENTLY before the old constraint is
swapped for it. ``email_messages.topic`` is the email's topic (NULL: none).

Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "suppression_list"
OLD_UNIQUE = "uq_suppression_list_organization_id_email"
NEW_UNIQUE = "uq_suppression_list_organization_id_email_topic"
TOPIC_CHECK = "ck_suppression_list_topic"


def upgrade() -> None:
    op.add_column(TABLE, sa.Column("topic", sa.Text(), server_default="", nullable=False))
    op.create_check_constraint(TOPIC_CHECK, TABLE, "topic = '' OR topic ~ '^[A-Za-z0-9_-]{1,64}$'")
    op.add_column("email_messages", sa.Column("topic", sa.Text(), nullable=True))
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NEW_UNIQUE}")
        op.execute(
            f"CREATE UNIQUE INDEX CONCURRENTLY {NEW_UNIQUE} ON {TABLE} (organization_id, email, topic)"
        )
    op.drop_constraint(OLD_UNIQUE, TABLE, type_="unique")
    op.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {NEW_UNIQUE} UNIQUE USING INDEX {NEW_UNIQUE}")


def downgrade() -> None:
    # Entries for a topic cannot be kept under the old key: they go (the everything entries stay).
    op.execute(f"DELETE FROM {TABLE} WHERE topic <> ''")
    op.drop_constraint(NEW_UNIQUE, TABLE, type_="unique")
    op.create_unique_constraint(OLD_UNIQUE, TABLE, ["organization_id", "email"])
    op.drop_column("email_messages", "topic")
    op.drop_constraint(TOPIC_CHECK, TABLE, type_="check")
    op.drop_column(TABLE, "topic")
