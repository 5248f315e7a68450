"""The append-only audit log of connector actions: when, who, what, on what, result and why.

Details are scrubbed: a key whose name suggests a secret is replaced, whatever its value.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal

from sqlalchemy.orm import Session

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
    """Add one audit row to ``session`` (committed with the caller's transaction)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    entry = AuditLog(
        action=action,
        actor=actor,
        result=result,
        organization_id=organization_id,
        connector_id=connector_id,
        target=target,
        reason=reason,
        details=scrub(details or {}),
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
