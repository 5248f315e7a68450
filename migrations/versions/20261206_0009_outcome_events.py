"""outcome_events: the outbox of per-recipient outcome events for sends that asked for them

Revision ID: 0009
Revises: 0008
A send naming ``outcomes_queue`` keeps it on each ledger row; triggers write an event in the same
transaction as each status change and each webhook metric, and ``pilot.publish_outcomes`` publishes.

Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = ", ".join(
    repr(kind)
    for kind in (
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
)
# The statuses that are outcomes of the send path; later ones (delivered, bounced...) come from the
# webhook metrics trigger, which names every delivery event (opened and clicked change no status).
_STATUS_TRIGGER = """
CREATE FUNCTION pilot_outcome_of_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.outcomes_queue IS NULL OR NEW.status NOT IN ('queued', 'deferred', 'sent', 'failed', 'suppressed') THEN
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
            CASE WHEN NEW.status = 'deferred' THEN NEW.next_attempt_at END,
            CASE WHEN NEW.status IN ('deferred', 'failed', 'suppressed') THEN NEW.last_error END)
    ON CONFLICT (id) DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER email_messages_outcome_events
    AFTER INSERT OR UPDATE OF status, next_attempt_at ON email_messages
    FOR EACH ROW WHEN (NEW.outcomes_queue IS NOT NULL) EXECUTE FUNCTION pilot_outcome_of_status();
"""

_METRIC_TRIGGER = """
CREATE FUNCTION pilot_outcome_of_metric() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.event NOT IN ('delivered', 'delivery_delayed', 'bounced', 'complained', 'opened', 'clicked',
                         'unsubscribed') THEN
        RETURN NULL;
    END IF;
    INSERT INTO outcome_events (id, message_id, queue, kind, occurred_at, reason)
    SELECT NEW.id, m.id, m.outcomes_queue, NEW.event, NEW.occurred_at,
           CASE WHEN NEW.event = 'bounced' THEN NEW.metadata ->> 'bounce_type'
                WHEN NEW.event = 'unsubscribed' THEN coalesce(nullif(NEW.metadata ->> 'topic', ''), 'everything')
           END
    FROM email_messages m
    WHERE m.id = NEW.message_id AND m.outcomes_queue IS NOT NULL
    ON CONFLICT (id) DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER email_metrics_outcome_events
    AFTER INSERT ON email_metrics FOR EACH ROW EXECUTE FUNCTION pilot_outcome_of_metric();
"""


def upgrade() -> None:
    # Nullable without a default: PostgreSQL adds the column without rewriting the table.
    op.add_column("email_messages", sa.Column("outcomes_queue", sa.Text(), nullable=True))
    op.create_table(
        "outcome_events",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("message_id", sa.UUID(), nullable=False),
        sa.Column("queue", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(f"kind IN ({KINDS})", name=op.f("ck_outcome_events_kind")),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["email_messages.id"],
            name=op.f("fk_outcome_events_message_id_email_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outcome_events")),
    )
    op.create_index(op.f("ix_outcome_events_message_id"), "outcome_events", ["message_id"], unique=False)
    op.create_index(
        "ix_outcome_events_unpublished",
        "outcome_events",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.execute(_STATUS_TRIGGER)
    op.execute(_METRIC_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER email_metrics_outcome_events ON email_metrics")
    op.execute("DROP TRIGGER email_messages_outcome_events ON email_messages")
    op.execute("DROP FUNCTION pilot_outcome_of_metric()")
    op.execute("DROP FUNCTION pilot_outcome_of_status()")
    op.drop_table("outcome_events")
    op.drop_column("email_messages", "outcomes_queue")
