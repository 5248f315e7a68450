"""reputation: campaign slices for a window of its last recipients; guard state changes as outcome events

Revision ID: 0013
Revises: 0012
Campaigns count in slices of 100 recipients besides their total: existing counted rows are numbered
per campaign in the order they were written, and a resumed campaign's offsets move to its slice.
``outcome_events`` may name an organization and a scope instead of a ledger row (reputation kinds,
added to whatever kinds the constraint allows now); ``reputation_states`` keeps the queues to tell.

Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLICE = 100
KIND_CHECK = "ck_outcome_events_kind"
REPUTATION_KINDS = ("reputation_warning", "reputation_paused", "reputation_ok", "reputation_resumed")

# Every counted row of a campaign, numbered from 1 in the order the rows were written.
_NUMBERED = """
SELECT r.message_id, m.task_id, r.hard_bounce, r.complaint,
       row_number() OVER (PARTITION BY m.task_id ORDER BY m.created_at, m.id) AS n
FROM reputation_marks r JOIN email_messages m ON m.id = r.message_id
WHERE r.counted AND m.task_id IS NOT NULL
"""
_MARK_SLICES = f"""
UPDATE reputation_marks r SET campaign_bucket = 1 + (numbered.n - 1) / {SLICE}
FROM ({_NUMBERED}) AS numbered WHERE r.message_id = numbered.message_id
"""
_COUNT_SLICES = """
INSERT INTO reputation_counts (scope_id, bucket, scope, recipients, hard_bounces, complaints)
SELECT m.task_id, r.campaign_bucket, 'campaign', count(*), count(*) FILTER (WHERE r.hard_bounce),
       count(*) FILTER (WHERE r.complaint)
FROM reputation_marks r JOIN email_messages m ON m.id = r.message_id
WHERE r.campaign_bucket IS NOT NULL
GROUP BY m.task_id, r.campaign_bucket
"""
# A resumed campaign kept its total at the resume as offsets: the recipients numbered up to it now
# fill the slices before the resume's slice and part of it (offsets within that slice).
_MOVE_RESUMES = f"""
UPDATE reputation_states s SET
    resume_bucket = 1 + s.offset_recipients / {SLICE},
    offset_recipients = s.offset_recipients % {SLICE},
    offset_hard_bounces = (SELECT count(*) FILTER (WHERE n.hard_bounce) FROM ({_NUMBERED}) AS n
        WHERE n.task_id = s.scope_id AND n.n > s.offset_recipients / {SLICE} * {SLICE}
            AND n.n <= s.offset_recipients),
    offset_complaints = (SELECT count(*) FILTER (WHERE n.complaint) FROM ({_NUMBERED}) AS n
        WHERE n.task_id = s.scope_id AND n.n > s.offset_recipients / {SLICE} * {SLICE}
            AND n.n <= s.offset_recipients)
WHERE s.scope = 'campaign' AND s.resume_bucket IS NOT NULL
"""
_RESTORE_RESUMES = f"""
UPDATE reputation_states s SET
    offset_recipients = (s.resume_bucket - 1) * {SLICE} + s.offset_recipients,
    offset_hard_bounces = s.offset_hard_bounces + coalesce((SELECT sum(c.hard_bounces)
        FROM reputation_counts c WHERE c.scope_id = s.scope_id AND c.bucket BETWEEN 1 AND s.resume_bucket - 1), 0),
    offset_complaints = s.offset_complaints + coalesce((SELECT sum(c.complaints)
        FROM reputation_counts c WHERE c.scope_id = s.scope_id AND c.bucket BETWEEN 1 AND s.resume_bucket - 1), 0),
    resume_bucket = 0
WHERE s.scope = 'campaign' AND s.resume_bucket IS NOT NULL
"""


def _kinds_now() -> list[str]:
    """The kinds the outcome events' constraint allows now (another migration may have added some)."""
    definition = op.get_bind().scalar(
        sa.text("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = :name"),
        {"name": KIND_CHECK},
    )
    return re.findall(r"'([a-z_]+)'", definition or "")


def _kinds_check(kinds: Sequence[str]) -> None:
    op.drop_constraint(op.f(KIND_CHECK), "outcome_events", type_="check")
    listed = ", ".join(f"'{kind}'" for kind in kinds)
    op.execute(f"ALTER TABLE outcome_events ADD CONSTRAINT {KIND_CHECK} CHECK (kind IN ({listed})) NOT VALID")
    op.execute(f"ALTER TABLE outcome_events VALIDATE CONSTRAINT {KIND_CHECK}")


def upgrade() -> None:
    op.add_column("reputation_marks", sa.Column("campaign_bucket", sa.Integer(), nullable=True))
    op.execute(_MARK_SLICES)
    op.execute(_COUNT_SLICES)
    op.execute(_MOVE_RESUMES)
    op.add_column(
        "reputation_states",
        sa.Column(
            "outcome_queues", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False
        ),
    )
    op.alter_column("outcome_events", "message_id", existing_type=sa.UUID(), nullable=True)
    op.add_column("outcome_events", sa.Column("organization_id", sa.UUID(), nullable=True))
    op.add_column("outcome_events", sa.Column("scope", sa.Text(), nullable=True))
    op.add_column("outcome_events", sa.Column("scope_id", sa.UUID(), nullable=True))
    op.add_column("outcome_events", sa.Column("rates", postgresql.JSONB(), nullable=True))
    op.create_foreign_key(
        op.f("fk_outcome_events_organization_id_organizations"),
        "outcome_events",
        "organizations",
        ["organization_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_check_constraint(
        op.f("ck_outcome_events_subject"),
        "outcome_events",
        "message_id IS NOT NULL OR organization_id IS NOT NULL",
    )
    kinds = _kinds_now()
    _kinds_check([*kinds, *(kind for kind in REPUTATION_KINDS if kind not in kinds)])


def downgrade() -> None:
    # Reputation events have no place in the old table: they are dropped, published or not.
    op.execute("DELETE FROM outcome_events WHERE message_id IS NULL")
    _kinds_check([kind for kind in _kinds_now() if kind not in REPUTATION_KINDS])
    op.drop_constraint(op.f("ck_outcome_events_subject"), "outcome_events", type_="check")
    op.drop_constraint(
        op.f("fk_outcome_events_organization_id_organizations"), "outcome_events", type_="foreignkey"
    )
    op.drop_column("outcome_events", "rates")
    op.drop_column("outcome_events", "scope_id")
    op.drop_column("outcome_events", "scope")
    op.drop_column("outcome_events", "organization_id")
    op.alter_column("outcome_events", "message_id", existing_type=sa.UUID(), nullable=False)
    op.drop_column("reputation_states", "outcome_queues")
    op.execute(_RESTORE_RESUMES)
    op.execute("DELETE FROM reputation_counts WHERE scope = 'campaign' AND bucket > 0")
    op.drop_column("reputation_marks", "campaign_bucket")
