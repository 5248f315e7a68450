"""Judge counted scopes against their thresholds; resume an organization; report every scope's state.

A scope crossing a warning level is ``warning`` (audited); crossing a pause level it is ``paused``:
its bulk rows wait at dispatch (``shared.sending.queue``) until an operator resumes the organization.
Nothing is acted on below the minimum volume. Rules: docs/architecture.md, "Reputation".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared import audit
from shared.models import (
    AuditLog,
    EmailMessage,
    MessageStatus,
    ReputationCount,
    ReputationScope,
    ReputationState,
    ReputationStatus,
)
from shared.reputation.counting import CAMPAIGN_BUCKET, ScopeKey, day_bucket
from shared.reputation.policy import Thresholds, thresholds_for
from shared.settings import Settings

#: How the ``last_error`` of a row the guard holds starts (a resume releases the rows it names).
HOLD_PREFIX = "reputation hold: "
#: A held bulk row is looked at again this often (a resume releases it at once).
HOLD_WAIT_S = 3600.0
#: Actor of the audit rows the guard writes itself.
ACTOR = "reputation-guard"
_AUDIT_ACTION = {ReputationState.WARNING: "reputation.warning", ReputationState.PAUSED: "reputation.pause"}


@dataclass(frozen=True)
class Window:
    """A scope's counts over its window (since its last resume, if that is later)."""

    recipients: int
    hard_bounces: int
    complaints: int

    @property
    def bounce_rate(self) -> float | None:
        return self.hard_bounces / self.recipients if self.recipients else None

    @property
    def complaint_rate(self) -> float | None:
        return self.complaints / self.recipients if self.recipients else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "recipients": self.recipients,
            "hard_bounces": self.hard_bounces,
            "complaints": self.complaints,
            "bounce_rate": _rounded(self.bounce_rate),
            "complaint_rate": _rounded(self.complaint_rate),
        }


@dataclass(frozen=True)
class Evaluation:
    """One scope judged: its window, its state before and after, and why."""

    scope: ReputationScope
    scope_id: uuid.UUID
    organization_id: uuid.UUID
    window: Window
    before: ReputationState
    after: ReputationState
    reason: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def level(window: Window, thresholds: Thresholds) -> tuple[ReputationState, str | None]:
    """The state ``window`` calls for, and why (``ok`` below the minimum volume, whatever the rates)."""
    if window.recipients < thresholds.min_volume:
        return ReputationState.OK, None
    assert window.bounce_rate is not None and window.complaint_rate is not None
    checks = (
        (ReputationState.PAUSED, "hard bounces", window.bounce_rate, thresholds.pause_bounce_rate),
        (ReputationState.PAUSED, "complaints", window.complaint_rate, thresholds.pause_complaint_rate),
        (ReputationState.WARNING, "hard bounces", window.bounce_rate, thresholds.warn_bounce_rate),
        (ReputationState.WARNING, "complaints", window.complaint_rate, thresholds.warn_complaint_rate),
    )
    for state, what, rate, limit in checks:
        if rate >= limit:
            return state, f"{what} {_pct(rate)} of {window.recipients} recipients (at {_pct(limit)}: {state})"
    return ReputationState.OK, None


def evaluate(
    session: Session, touched: Iterable[ScopeKey], settings: Settings, *, now: datetime
) -> list[Evaluation]:
    """Judge every scope of ``touched`` (after its counts were added), in one order; record changes.

    A ``paused`` scope stays paused whatever its rates (only :func:`resume` lifts it); a ``warning``
    drops back to ``ok`` when its rates do.
    """
    scopes = {key.scope_id: key for key in touched}
    policies: dict[uuid.UUID, Thresholds] = {}
    evaluations = []
    for scope_id in sorted(scopes, key=str):
        key = scopes[scope_id]
        if key.organization_id not in policies:
            policies[key.organization_id] = thresholds_for(session, key.organization_id, settings)
        status = _locked_status(session, key)
        window = window_of(session, status, settings, now=now)
        wanted, why = level(window, policies[key.organization_id])
        before = ReputationState(status.state)
        after = before if before is ReputationState.PAUSED else wanted
        status.rates = {**window.as_dict(), "evaluated_at": now.isoformat()}
        if after != before:
            status.state, status.changed_at = after.value, now
            status.reason = _hold_reason(key.scope, scope_id, why) if after is ReputationState.PAUSED else why
            _audit_change(session, key, after, status.reason, window)
        evaluations.append(
            Evaluation(key.scope, scope_id, key.organization_id, window, before, after, status.reason)
        )
    return evaluations


def _locked_status(session: Session, key: ScopeKey) -> ReputationStatus:
    values = {"scope_id": key.scope_id, "scope": key.scope.value, "organization_id": key.organization_id}
    session.execute(
        insert(ReputationStatus).values(values).on_conflict_do_nothing(index_elements=["scope_id"])
    )
    status = session.scalars(
        select(ReputationStatus)
        .where(ReputationStatus.scope_id == key.scope_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return status


def window_of(session: Session, status: ReputationStatus, settings: Settings, *, now: datetime) -> Window:
    """The scope's counts over its window: the last ``PILOT_REPUTATION_WINDOW_DAYS`` days for an
    organization or connector, every recipient so far for a campaign; counted from its last resume."""
    if status.scope == ReputationScope.CAMPAIGN:
        low = high = CAMPAIGN_BUCKET
    else:
        high = day_bucket(now)
        low = high - settings.pilot_reputation_window_days + 1
    resumed = status.resume_bucket
    if resumed is not None and resumed > high:
        resumed = None
    start = max(low, resumed) if resumed is not None else low
    found = session.execute(
        select(
            func.coalesce(func.sum(ReputationCount.recipients), 0),
            func.coalesce(func.sum(ReputationCount.hard_bounces), 0),
            func.coalesce(func.sum(ReputationCount.complaints), 0),
        ).where(
            ReputationCount.scope_id == status.scope_id,
            ReputationCount.bucket >= start,
            ReputationCount.bucket <= high,
        )
    ).one()
    recipients, hard, complaints = (int(value) for value in found)
    if resumed is not None and resumed >= low:
        recipients -= status.offset_recipients
        hard -= status.offset_hard_bounces
        complaints -= status.offset_complaints
    return Window(max(recipients, 0), max(hard, 0), max(complaints, 0))


def _hold_reason(scope: ReputationScope, scope_id: uuid.UUID, why: str | None) -> str:
    return f"{HOLD_PREFIX}{scope} {scope_id} paused: {why}"


def _audit_change(
    session: Session, key: ScopeKey, state: ReputationState, reason: str | None, window: Window
) -> None:
    # Outcome events to the upstream app (issue #18) belong here too, once they exist.
    action = _AUDIT_ACTION.get(state)
    if action is None:
        return
    audit.record(
        session,
        action=action,
        actor=ACTOR,
        organization_id=key.organization_id,
        connector_id=key.scope_id if key.scope is ReputationScope.CONNECTOR else None,
        target=f"{key.scope} {key.scope_id}",
        reason=reason,
        details=window.as_dict(),
    )


@dataclass(frozen=True)
class Resumed:
    """What a resume did: the scopes lifted and the held rows released (sent from then on)."""

    scopes: list[tuple[ReputationScope, uuid.UUID]]
    released: int


def resume(
    session: Session, organization_id: uuid.UUID, *, actor: str, now: datetime, reason: str | None = None
) -> Resumed:
    """Lift every pause of the organization (its own, its connectors', its campaigns'), audited.

    Rows held now are released (due at once; beat's ``release_deferred`` queues them) and no scope
    holds rows created before ``now`` again, even if they bounce; the rates start afresh from here.
    """
    statuses = session.scalars(
        select(ReputationStatus)
        .where(ReputationStatus.organization_id == organization_id)
        .where(ReputationStatus.state == ReputationState.PAUSED)
        .order_by(ReputationStatus.scope_id)
        .with_for_update()
    ).all()
    for status in statuses:
        bucket = CAMPAIGN_BUCKET if status.scope == ReputationScope.CAMPAIGN else day_bucket(now)
        counts = session.get(ReputationCount, (status.scope_id, bucket))
        # The database's clock, as the rows' ``created_at`` it is compared with at dispatch.
        status.state, status.changed_at, status.resumed_at = ReputationState.OK.value, now, func.now()
        status.reason = None
        status.resume_bucket = bucket
        status.offset_recipients = counts.recipients if counts else 0
        status.offset_hard_bounces = counts.hard_bounces if counts else 0
        status.offset_complaints = counts.complaints if counts else 0
    released = session.execute(
        update(EmailMessage)
        .where(EmailMessage.organization_id == organization_id)
        .where(EmailMessage.status == MessageStatus.DEFERRED)
        .where(EmailMessage.last_error.startswith(HOLD_PREFIX, autoescape=True))
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    released_rows = cast(CursorResult[Any], released).rowcount
    scopes = [(ReputationScope(status.scope), status.scope_id) for status in statuses]
    audit.record(
        session,
        action="reputation.resume",
        actor=actor,
        organization_id=organization_id,
        target=str(organization_id),
        reason=reason,
        details={"scopes": [f"{scope} {scope_id}" for scope, scope_id in scopes], "released": released_rows},
    )
    return Resumed(scopes, released_rows)


def hold_reason(
    session: Session, organization_id: uuid.UUID, connector_id: uuid.UUID, task_id: uuid.UUID | None
) -> str | None:
    """Why new bulk rows of this organization, connector and campaign wait (a paused scope), or None."""
    scope_ids = [organization_id, connector_id, *([task_id] if task_id is not None else [])]
    return session.scalars(
        select(ReputationStatus.reason)
        .where(ReputationStatus.scope_id.in_(scope_ids))
        .where(ReputationStatus.state == ReputationState.PAUSED)
        .limit(1)
    ).first()


def held_rows(
    session: Session, *, organization_id: uuid.UUID | None = None, task_id: uuid.UUID | None = None
) -> int:
    """How many rows (of an organization, or of a campaign) the guard holds now."""
    query = (
        select(func.count())
        .select_from(EmailMessage)
        .where(EmailMessage.status == MessageStatus.DEFERRED)
        .where(EmailMessage.last_error.startswith(HOLD_PREFIX, autoescape=True))
    )
    if organization_id is not None:
        query = query.where(EmailMessage.organization_id == organization_id)
    if task_id is not None:
        query = query.where(EmailMessage.task_id == task_id)
    return int(session.scalar(query) or 0)


def report(session: Session, settings: Settings, *, now: datetime, history: int = 10) -> list[dict[str, Any]]:
    """Every organization the guard has judged: its thresholds, each scope's state and rates (as of
    now), the rows it holds and its latest guard events (newest first)."""
    statuses = session.scalars(select(ReputationStatus).order_by(ReputationStatus.organization_id)).all()
    by_org: dict[uuid.UUID, list[ReputationStatus]] = {}
    for status in statuses:
        by_org.setdefault(status.organization_id, []).append(status)
    held = dict(
        session.execute(
            select(EmailMessage.organization_id, func.count())
            .where(EmailMessage.organization_id.in_(list(by_org)))
            .where(EmailMessage.status == MessageStatus.DEFERRED)
            .where(EmailMessage.last_error.startswith(HOLD_PREFIX, autoescape=True))
            .group_by(EmailMessage.organization_id)
        ).all()
    )
    organizations = []
    for organization_id, rows in by_org.items():
        thresholds = thresholds_for(session, organization_id, settings)
        scopes = [_scope_entry(session, status, settings, now) for status in _scope_order(rows)]
        own = next((entry for entry in scopes if entry["scope"] == ReputationScope.ORGANIZATION), None)
        organizations.append(
            {
                "organization_id": str(organization_id),
                "state": _worst(entry["state"] for entry in scopes),
                "rates": own["rates"] if own else None,
                "thresholds": thresholds.__dict__,
                "window_days": settings.pilot_reputation_window_days,
                "held_rows": int(held.get(organization_id, 0)),
                "scopes": scopes,
                "history": _history(session, organization_id, history),
            }
        )
    return organizations


def _scope_order(rows: Sequence[ReputationStatus]) -> list[ReputationStatus]:
    order = {scope: rank for rank, scope in enumerate(ReputationScope)}
    return sorted(rows, key=lambda row: (order[ReputationScope(row.scope)], str(row.scope_id)))


def _scope_entry(
    session: Session, status: ReputationStatus, settings: Settings, now: datetime
) -> dict[str, Any]:
    return {
        "scope": status.scope,
        "scope_id": str(status.scope_id),
        "state": status.state,
        "reason": status.reason,
        "rates": window_of(session, status, settings, now=now).as_dict(),
        "changed_at": status.changed_at.isoformat() if status.changed_at else None,
        "resumed_at": status.resumed_at.isoformat() if status.resumed_at else None,
    }


def _worst(states: Iterable[str]) -> str:
    rank = {state: index for index, state in enumerate(ReputationState)}
    return max(states, key=lambda state: rank[ReputationState(state)], default=ReputationState.OK.value)


def _history(session: Session, organization_id: uuid.UUID, limit: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(AuditLog)
        .where(AuditLog.organization_id == organization_id, AuditLog.action.startswith("reputation."))
        .order_by(AuditLog.created_at.desc(), AuditLog.id)
        .limit(limit)
    ).all()
    return [
        {"at": row.created_at.isoformat(), "action": row.action, "actor": row.actor, "reason": row.reason}
        for row in rows
    ]


def _pct(rate: float) -> str:
    return f"{rate * 100:.2f} %"


def _rounded(rate: float | None) -> float | None:
    return None if rate is None else round(rate, 6)
