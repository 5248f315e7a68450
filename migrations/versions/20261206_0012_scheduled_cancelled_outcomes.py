"""scheduled and cancelled outcome events; cancel by a caller's idempotency key reads an index

Revision ID: 0012
Revises: 0011
The status trigger of 0009 also reports ``scheduled`` (until its time) and ``cancelled`` (with who
cancelled). The rows sent under a caller's key get a prefix index per connector (the worker's own
keys, ``pilot/...``, are left out of it, so it holds only what a cancel by key can name).

Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.index_builds import create_index_concurrently, drop_index_concurrently

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "email_messages"
CHECK = "ck_outcome_events_kind"
CALLER_KEYS = "ix_email_messages_connector_id_caller_key"
OLD_KINDS = (
    "queued",
    "sent",
    "deferred",
    "suppressed",
    "failed",
    "delivered",
    "delivery_delayed",
    "bounced",
    "complained",
    "opened",
    "clicked",
    "unsubscribed",
)
NEW_KINDS = (*OLD_KINDS, "scheduled", "cancelled")


def _status_function(statuses: Sequence[str], *, until: str, reason: str) -> str:
    listed = ", ".join(f"'{status}'" for status in statuses)
    return f"""
CREATE OR REPLACE FUNCTION pilot_outcome_of_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.outcomes_queue IS NULL OR NEW.status NOT IN ({listed}) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.status = OLD.status
       AND (NEW.status <> 'deferred' OR NEW.next_attempt_at IS NOT DISTINCT FROM OLD.next_attempt_at) THEN
        RETURN NULL;
    END IF;
    INSERT INTO outcome_events (id, message_id, queue, kind, until, reason)
    VALUES (md5(NEW.id::text || '/' || NEW.status || '/' || NEW.attempts || '/'
                || coalesce(NEW.next_attempt_at::text, ''))::uuid,
            NEW.id, NEW.outcomes_queue, NEW.status,
            CASE WHEN NEW.status IN ({until}) THEN NEW.next_attempt_at END,
            CASE WHEN NEW.status IN ({reason}) THEN NEW.last_error END)
    ON CONFLICT (id) DO NOTHING;
    RETURN NULL;
END $$;
"""


def _kinds_check(kinds: Sequence[str]) -> None:
    op.drop_constraint(op.f(CHECK), "outcome_events", type_="check")
    listed = ", ".join(f"'{kind}'" for kind in kinds)
    op.execute(f"ALTER TABLE outcome_events ADD CONSTRAINT {CHECK} CHECK (kind IN ({listed})) NOT VALID")
    op.execute(f"ALTER TABLE outcome_events VALIDATE CONSTRAINT {CHECK}")


def upgrade() -> None:
    _kinds_check(NEW_KINDS)
    op.execute(
        _status_function(
            ("queued", "deferred", "sent", "failed", "suppressed", "scheduled", "cancelled"),
            until="'deferred', 'scheduled'",
            reason="'deferred', 'failed', 'suppressed', 'cancelled'",
        )
    )
    with op.get_context().autocommit_block():
        create_index_concurrently(
            CALLER_KEYS,
            TABLE,
            ["connector_id", "idempotency_key"],
            postgresql_ops={"idempotency_key": "text_pattern_ops"},
            postgresql_where=sa.text("idempotency_key NOT LIKE 'pilot/%'"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_concurrently(CALLER_KEYS, TABLE)
    op.execute(
        _status_function(
            ("queued", "deferred", "sent", "failed", "suppressed"),
            until="'deferred'",
            reason="'deferred', 'failed', 'suppressed'",
        )
    )
    # Events of the new kinds have no place in the old set: they are dropped, published or not.
    op.execute("DELETE FROM outcome_events WHERE kind IN ('scheduled', 'cancelled')")
    _kinds_check(OLD_KINDS)
