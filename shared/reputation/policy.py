"""Reputation thresholds: the operator's defaults and limits (settings), an organization's own values."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields, replace

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared import audit
from shared.errors import OrganizationNotFound, ReputationPolicyInvalid
from shared.models import Organization, ReputationPolicy
from shared.settings import Settings


@dataclass(frozen=True)
class Thresholds:
    """When the guard acts: rates are hard bounces (complaints) per recipient with a known outcome,
    and nothing is acted on below ``min_volume`` recipients in the window."""

    warn_bounce_rate: float
    pause_bounce_rate: float
    warn_complaint_rate: float
    pause_complaint_rate: float
    min_volume: int


def defaults(settings: Settings) -> Thresholds:
    """The operator's thresholds, which every organization has unless it set its own."""
    return Thresholds(
        warn_bounce_rate=settings.pilot_reputation_warn_bounce_rate,
        pause_bounce_rate=settings.pilot_reputation_pause_bounce_rate,
        warn_complaint_rate=settings.pilot_reputation_warn_complaint_rate,
        pause_complaint_rate=settings.pilot_reputation_pause_complaint_rate,
        min_volume=settings.pilot_reputation_min_volume,
    )


def thresholds_for(session: Session, organization_id: uuid.UUID, settings: Settings) -> Thresholds:
    """The organization's thresholds: its own values where it set them, the operator's elsewhere."""
    base = defaults(settings)
    own = session.get(ReputationPolicy, organization_id)
    if own is None:
        return base
    values = {f.name: getattr(own, f.name) for f in fields(Thresholds) if getattr(own, f.name) is not None}
    return replace(base, **values)


def problems_of(thresholds: Thresholds, settings: Settings) -> dict[str, str]:
    """What is wrong with ``thresholds`` under the operator's limits (empty: nothing)."""
    problems = {}
    if thresholds.warn_bounce_rate > thresholds.pause_bounce_rate:
        problems["warn_bounce_rate"] = "must not exceed pause_bounce_rate"
    if thresholds.warn_complaint_rate > thresholds.pause_complaint_rate:
        problems["warn_complaint_rate"] = "must not exceed pause_complaint_rate"
    if thresholds.pause_bounce_rate > settings.pilot_reputation_max_pause_bounce_rate:
        limit = settings.pilot_reputation_max_pause_bounce_rate
        problems["pause_bounce_rate"] = f"the operator allows at most {limit}"
    if thresholds.pause_complaint_rate > settings.pilot_reputation_max_pause_complaint_rate:
        limit = settings.pilot_reputation_max_pause_complaint_rate
        problems["pause_complaint_rate"] = f"the operator allows at most {limit}"
    if thresholds.min_volume < settings.pilot_reputation_min_volume_floor:
        floor = settings.pilot_reputation_min_volume_floor
        problems["min_volume"] = f"the operator requires at least {floor}"
    for name in ("warn_bounce_rate", "pause_bounce_rate", "warn_complaint_rate", "pause_complaint_rate"):
        if not 0 < getattr(thresholds, name) <= 1:
            problems[name] = "must be a fraction above 0 and at most 1 (0.04 is 4 %)"
    return problems


def set_policy(
    session: Session,
    organization_id: uuid.UUID,
    settings: Settings,
    *,
    actor: str,
    **values: float | int | None,
) -> Thresholds:
    """Set some of the organization's thresholds (``None``: keep); refused whole if any is out of bounds."""
    if session.get(Organization, organization_id) is None:
        raise OrganizationNotFound(f"no organization with id {organization_id}")
    given = {name: value for name, value in values.items() if value is not None}
    unknown = set(given) - {f.name for f in fields(Thresholds)}
    if unknown:
        raise ReputationPolicyInvalid("reputation thresholds", {name: "unknown" for name in sorted(unknown)})
    wanted = replace(thresholds_for(session, organization_id, settings), **given)  # type: ignore[arg-type]
    problems = problems_of(wanted, settings)
    if problems:
        raise ReputationPolicyInvalid("reputation thresholds", problems)
    row = {f.name: getattr(wanted, f.name) for f in fields(Thresholds)}
    statement = insert(ReputationPolicy).values(organization_id=organization_id, **row)
    session.execute(statement.on_conflict_do_update(index_elements=["organization_id"], set_=row))
    audit.record(
        session,
        action="reputation.policy_set",
        actor=actor,
        organization_id=organization_id,
        target=str(organization_id),
        details=row,
    )
    return wanted
