"""The append-only audit log of connector actions: when, who, what, on what, result and why.

Details are scrubbed: a key whose name suggests a secret is replaced, whatever its value. No row
holds an address: each one in the target, reason or details is stored as its hash
(:func:`shared.address_hashing.address_hash`, salted with the row's organization).
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal

from sqlalchemy.orm import Session

from shared.address_hashing import hash_addresses_in, hash_addresses_within
from shared.models import AuditLog

Result = Literal["success", "failure", "denied"]

#: Actions the log knows; free text elsewhere would make the log hard to query.
ACTIONS = frozenset(
    {
        "organization.create",
        "connector.create",
        "connector.limits_set",
        "connector.key_set",
        "connector.key_rotated",
        "connector.pause",
        "connector.resume",
        "connector.status_change",
        "connector.test_connection",
        "suppression.add",
        "suppression.remove",
        "suppression.import",
        "send.payload_invalid",
        "send.idempotency_conflict",
        "reputation.warning",
        "reputation.pause",
        "reputation.ok",
        "reputation.resume",
        "reputation.policy_set",
        "address.erase",
    }
)

_SECRET_NAME = re.compile(r"key|secret|token|password|credential|cipher|authorization", re.IGNORECASE)
REDACTED = "[redacted]"


def record(
    session: Session,
    *,
    action: str,
    actor: str,
    result: Result = "success",
    organization_id: uuid.UUID | None = None,
    connector_id: uuid.UUID | None = None,
    target: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Add one audit row to ``session`` (committed with the caller's transaction), its addresses hashed."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    entry = AuditLog(
        action=action,
        actor=actor,
        result=result,
        organization_id=organization_id,
        connector_id=connector_id,
        target=hash_addresses_in(target, organization_id) if target is not None else None,
        reason=hash_addresses_in(reason, organization_id) if reason is not None else None,
        details=hash_addresses_within(scrub(details or {}), organization_id),
    )
    session.add(entry)
    return entry


def scrub(details: dict[str, Any]) -> dict[str, Any]:
    """``details`` with every value under a secret-looking name redacted, recursively."""
    return {key: _scrub_value(key, value) for key, value in details.items()}


def _scrub_value(name: str, value: Any) -> Any:
    if _SECRET_NAME.search(name) and not name.endswith(("_version", "_set")):
        return REDACTED
    if isinstance(value, dict):
        return scrub(value)
    return value
