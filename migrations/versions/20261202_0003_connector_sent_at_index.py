"""email_messages (connector_id, sent_at) index for the budget rebuild

Revision ID: 0003
Revises: 0002
When Redis loses a connector's rate-limit buckets they are rebuilt from the ledger: the emails the
connector sent in the last day (``shared.sending.ledger.recent_usage``). With only an index on
``connector_id`` that query read every row the connector ever sent. The composite index answers it
from the last day's entries; it also serves every lookup by ``connector_id`` alone, so the
single-column index is dropped (one index less to maintain per insert).

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
