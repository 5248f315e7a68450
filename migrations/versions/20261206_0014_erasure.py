"""erasure: the suppression reason ``erased``; addresses already in audit rows stored hashed

Revision ID: 0014
Revises: 0013
Every address in an existing audit row (target, reason, details) is replaced by its hash, salted
with the row's organization, as shared.address_hashing writes new rows. The append-only trigger is
set aside for that one update only. Hashing cannot be undone: a downgrade keeps the hashes.

Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REASONS = ("hard_bounce", "spam_complaint", "provider_suppressed", "soft_bounce", "manual", "unsubscribed")
# A copy, not an import: this revision must keep converting the same way whatever the code becomes.
_ADDRESS = re.compile(r"[\w.!#$%&*+/=?^`{|}~-]+@(?:[\w-]+\.)+[\w-]+")
_BATCH = 1000


def _reason_check(reasons: Sequence[str]) -> str:
    return "reason IN (" + ", ".join(f"'{reason}'" for reason in reasons) + ")"


def _hash(organization_id: uuid.UUID | None, address: str) -> str:
    salt = str(organization_id) if organization_id is not None else ""
    return "sha256:" + hashlib.sha256(f"{salt}/{address.strip(' ').lower()}".encode()).hexdigest()


def _hashed(value: Any, organization_id: uuid.UUID | None) -> Any:
    if isinstance(value, str):
        return _ADDRESS.sub(lambda match: _hash(organization_id, match.group()), value)
    if isinstance(value, dict):
        return {_hashed(str(k), organization_id): _hashed(v, organization_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_hashed(item, organization_id) for item in value]
    return value


def _hash_audit_addresses() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT id, organization_id, target, reason, details FROM audit_logs"
            " WHERE target LIKE '%@%' OR reason LIKE '%@%' OR details::text LIKE '%@%'"
        )
    ).all()
    update = sa.text(
        "UPDATE audit_logs SET target = :target, reason = :reason, details = :details WHERE id = :id"
    ).bindparams(sa.bindparam("details", type_=postgresql.JSONB))
    changes = [
        {
            "id": row.id,
            "target": _hashed(row.target, row.organization_id),
            "reason": _hashed(row.reason, row.organization_id),
            "details": _hashed(row.details, row.organization_id),
        }
        for row in rows
    ]
    if not changes:
        return
    op.execute("ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only")
    for start in range(0, len(changes), _BATCH):
        connection.execute(update, changes[start : start + _BATCH])
    op.execute("ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_append_only")


def upgrade() -> None:
    op.drop_constraint(op.f("ck_suppression_list_reason"), "suppression_list", type_="check")
    op.create_check_constraint(
        op.f("ck_suppression_list_reason"), "suppression_list", _reason_check((*REASONS, "erased"))
    )
    _hash_audit_addresses()


def downgrade() -> None:
    # The address is gone, so an erased person's entry stays as a manual one: never mailed again.
    op.execute("UPDATE suppression_list SET reason = 'manual' WHERE reason = 'erased'")
    op.drop_constraint(op.f("ck_suppression_list_reason"), "suppression_list", type_="check")
    op.create_check_constraint(op.f("ck_suppression_list_reason"), "suppression_list", _reason_check(REASONS))
