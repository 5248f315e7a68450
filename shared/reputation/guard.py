"""Judge counted scopes against their thresholds; resume an organization; report every scope's state.

A scope crossing a warning level is ``warning`` (audited); crossing a pause level it is ``paused``:
its bulk rows wait at dispatch (``shared.sending.queue``) until an operator resumes the organization.
Nothing is acted on below the minimum volume. Rules: docs/architecture.md, "Reputation".
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from marketing_pilot_client.outcomes import OutcomeKind
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
from shared.reputation import events
from shared.reputation.counting import CAMPAIGN_SLICE, CAMPAIGN_TOTAL, ScopeKey, campaign_slice, day_bucket
from shared.reputation.policy import Thresholds, thresholds_for
from shared.settings import Settings

#: How the ``last_error`` of a row the guard holds starts (a resume releases the rows it names).
HOLD_PREFIX = "reputation hold: "
#: How the ``last_error`` of a paused organization's transactional row waiting for its small rate
#: starts (a resume releases these too).
RATE_PREFIX = "reputation rate: "
#: A held bulk row is looked at again this often (a resume releases it at once).
HOLD_WAIT_S = 3600.0
#: Actor of the audit rows the guard writes itself.
ACTOR = "reputation-guard"
_AUDIT_ACTION = {
    ReputationState.WARNING: "reputation.warning",
    ReputationState.PAUSED: "reputation.pause",
    ReputationState.OK: "reputation.ok",
}


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
    session: Session,
    touched: Iterable[ScopeKey],
    settings: Settings,
    *,
    now: datetime,
    queues: Mapping[uuid.UUID, Iterable[str]] | None = None,
) -> list[Evaluation]:
    """Judge every scope of ``touched`` (after its counts were added), in one order; record changes.

    A ``paused`` scope stays paused whatever its rates (only :func:`resume` lifts it); a ``warning``
    drops back to ``ok`` when its rates do. ``queues``: the outcome-event queues the counted rows
    named, by scope id (each scope tells its changes there).
    """
    scopes = {key.scope_id: key for key in touched}
    policies: dict[uuid.UUID, Thresholds] = {}
    evaluations = []
    for scope_id in sorted(scopes, key=str):
        key = scopes[scope_id]
        if key.organization_id not in policies:
            policies[key.organization_id] = thresholds_for(session, key.organization_id, settings)
        status = _locked_status(session, key)
        events.remember_queues(status, (queues or {}).get(scope_id, ()))
        thresholds = policies[key.organization_id]
        window = window_of(session, status, settings, now=now, min_volume=thresholds.min_volume)
        wanted, why = level(window, thresholds)
        before = ReputationState(status.state)
        after = before if before is ReputationState.PAUSED else wanted
        status.rates = {**window.as_dict(), "evaluated_at": now.isoformat()}
        if after != before:
            status.state, status.changed_at = after.value, now
            status.reason = _hold_reason(key.scope, scope_id, why) if after is ReputationState.PAUSED else why
            _record_change(session, status, after, window, now)
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


def window_of(
    session: Session, status: ReputationStatus, settings: Settings, *, now: datetime, min_volume: int = 0
) -> Window:
    """The scope's counts over its window: the last ``PILOT_REPUTATION_WINDOW_DAYS`` days for an
    organization or connector; for a campaign its last ``PILOT_REPUTATION_CAMPAIGN_WINDOW``
    recipients (at least ``min_volume``), up to a slice more; counted from its last resume."""
    if status.scope == ReputationScope.CAMPAIGN:
        size = max(settings.pilot_reputation_campaign_window, min_volume)
        low, high = campaign_slices(session, status.scope_id, size)
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


def campaign_slices(session: Session, campaign_id: uuid.UUID, size: int) -> tuple[int, int]:
    """The first and last slice holding the campaign's last ``size`` counted recipients."""
    counted = session.scalar(
        select(ReputationCount.recipients).where(
            ReputationCount.scope_id == campaign_id, ReputationCount.bucket == CAMPAIGN_TOTAL
        )
    )
    counted = int(counted or 0)
    high = campaign_slice(max(counted - 1, 0))
    in_high = counted - (high - 1) * CAMPAIGN_SLICE
    low = high - math.ceil(max(size - in_high, 0) / CAMPAIGN_SLICE)
    return max(low, CAMPAIGN_TOTAL + 1), high


def _hold_reason(scope: ReputationScope, scope_id: uuid.UUID, why: str | None) -> str:
    return f"{HOLD_PREFIX}{scope} {scope_id} paused: {why}"


def _record_change(
    session: Session, status: ReputationStatus, state: ReputationState, window: Window, now: datetime
) -> None:
    """A scope's new state, audited and told to the upstream apps (outcome events)."""
    scope, rates = ReputationScope(status.scope), window.as_dict()
    audit.record(
        session,
        action=_AUDIT_ACTION[state],
        actor=ACTOR,
        organization_id=status.organization_id,
        connector_id=status.scope_id if scope is ReputationScope.CONNECTOR else None,
        target=f"{scope} {status.scope_id}",
        reason=status.reason,
        details=rates,
    )
    events.record_change(session, status, events.KIND_OF[state], at=now, reason=status.reason, rates=rates)


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
        if status.scope == ReputationScope.CAMPAIGN:
            bucket = campaign_slices(session, status.scope_id, 0)[1]
        else:
            bucket = day_bucket(now)
        counts = session.get(ReputationCount, (status.scope_id, bucket))
        told = {name: value for name, value in status.rates.items() if name != "evaluated_at"}
        events.record_change(
            session, status, OutcomeKind.REPUTATION_RESUMED, at=now, reason=reason, rates=told
        )
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
        .where(
            or_(
                EmailMessage.last_error.startswith(HOLD_PREFIX, autoescape=True),
                EmailMessage.last_error.startswith(RATE_PREFIX, autoescape=True),
            )
        )
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
        scopes = [
            _scope_entry(session, status, settings, now, thresholds.min_volume)
            for status in _scope_order(rows)
        ]
        own = next((entry for entry in scopes if entry["scope"] == ReputationScope.ORGANIZATION), None)
        organizations.append(
            {
                "organization_id": str(organization_id),
                "state": _worst(entry["state"] for entry in scopes),
                "rates": own["rates"] if own else None,
                "thresholds": thresholds.__dict__,
                "window_days": settings.pilot_reputation_window_days,
                "campaign_window": max(settings.pilot_reputation_campaign_window, thresholds.min_volume),
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
    session: Session, status: ReputationStatus, settings: Settings, now: datetime, min_volume: int
) -> dict[str, Any]:
    return {
        "scope": status.scope,
        "scope_id": str(status.scope_id),
        "state": status.state,
        "reason": status.reason,
        "rates": window_of(session, status, settings, now=now, min_volume=min_volume).as_dict(),
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
