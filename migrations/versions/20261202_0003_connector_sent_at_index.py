"""email_messages (connector_id, sent_at) index for the budget rebuild

Revision ID: 0003
Revises: 0002
The rebuild of a connector's lost buckets counts its sends of the last day
(``shared.sending.ledger.recent_usage``): the index answers it from that day's entries. It also
serves lookups by ``connector_id`` alone, so the single-column index is dropped.

Create Date: 2026-12-02 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_email_messages_connector_id_sent_at", "email_messages", ["connector_id", "sent_at"], unique=False
    )
    op.drop_index(op.f("ix_email_messages_connector_id"), table_name="email_messages")


def downgrade() -> None:
    op.create_index(op.f("ix_email_messages_connector_id"), "email_messages", ["connector_id"], unique=False)
    op.drop_index("ix_email_messages_connector_id_sent_at", table_name="email_messages")
