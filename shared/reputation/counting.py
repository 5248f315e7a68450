"""Reputation counts, kept as webhook events are applied: what each ledger row adds, once.

A row's contribution is a pure function of all its events (order and duplicates change nothing); its
mark records what it added, so only the difference is counted. Counts are added at the end of a
batch, in one order, so racing workers never deadlock nor lose an increment. A campaign also counts
in slices of :data:`CAMPAIGN_SLICE` recipients, in the order their outcomes became known.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.models import EmailMessage, EmailMetric, MessageMark, ReputationCount, ReputationScope
from shared.resend_events import EventType

#: The events that can change a row's contribution (others are never looked at).
COUNTED_EVENTS = frozenset({EventType.DELIVERED, EventType.BOUNCED, EventType.COMPLAINED})
#: A campaign's bucket of all its recipients so far (its ``recipients`` numbers the next one counted).
CAMPAIGN_TOTAL = 0
#: A campaign's recipients counted ``n``-th (from 0) are in slice bucket ``1 + n // CAMPAIGN_SLICE``.
CAMPAIGN_SLICE = 100
_EPOCH = date(1970, 1, 1)


def day_bucket(at: datetime) -> int:
    """The day of ``at`` (UTC) as days since 1970-01-01: the bucket of organizations and connectors."""
    return (at.astimezone(UTC).date() - _EPOCH).days


def campaign_slice(position: int) -> int:
    """The slice bucket of a campaign's recipient counted at ``position`` (0: its first)."""
    return 1 + position // CAMPAIGN_SLICE


@dataclass(frozen=True)
class Contribution:
    """What one row adds: a recipient with a known outcome, a hard bounce, a complaint (each 0 or 1)."""

    counted: bool = False
    hard_bounce: bool = False
    complaint: bool = False


def contribution(events: Iterable[tuple[str, str | None]]) -> Contribution:
    """A row's contribution from all its ``(event, bounce_type)`` pairs: delivered, bounced or
    complained counts the recipient; only a ``Permanent`` bounce is a hard bounce."""
    kinds = list(events)
    hard = any(event == EventType.BOUNCED and bounce == "Permanent" for event, bounce in kinds)
    complaint = any(event == EventType.COMPLAINED for event, _ in kinds)
    counted = hard or complaint or any(event in COUNTED_EVENTS for event, _ in kinds)
    return Contribution(counted, hard, complaint)


@dataclass(frozen=True)
class ScopeKey:
    """One counted scope: its kind, id, bucket and organization."""

    scope_id: uuid.UUID
    bucket: int
    scope: ReputationScope
    organization_id: uuid.UUID


@dataclass
class Deltas:
    """Counts to add, by scope and bucket: ``[recipients, hard bounces, complaints]``; the rows a
    campaign counts for the first time (given their slice when the counts are written); the
    outcome-event queues the counted rows named, by scope id."""

    counts: dict[ScopeKey, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))
    fresh: dict[ScopeKey, dict[uuid.UUID, Contribution]] = field(default_factory=lambda: defaultdict(dict))
    queues: dict[uuid.UUID, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, key: ScopeKey, before: Contribution, after: Contribution) -> None:
        values = self.counts[key]
        values[0] += int(after.counted) - int(before.counted)
        values[1] += int(after.hard_bounce) - int(before.hard_bounce)
        values[2] += int(after.complaint) - int(before.complaint)

    def scopes(self) -> list[ScopeKey]:
        """The scopes with something to add, in the one order counts are written in."""
        return sorted((key for key, values in self.counts.items() if any(values)), key=_order)


def _order(key: ScopeKey) -> tuple[str, int]:
    return (str(key.scope_id), key.bucket)


def mark_message(session: Session, message: EmailMessage, deltas: Deltas) -> Contribution:
    """Recompute ``message``'s contribution from all its metric rows and add the difference to ``deltas``.

    The caller holds the message's row lock (event processing locks it first), so two events of one
    message never mark it at once.
    """
    rows = session.execute(
        select(EmailMetric.event, EmailMetric.metadata_["bounce_type"].astext).where(
            EmailMetric.message_id == message.id
        )
    ).all()
    after = contribution((event, bounce) for event, bounce in rows)
    # Columns, not the entity: an earlier event of this batch may have upserted the mark already.
    mark = session.execute(
        select(
            MessageMark.bucket,
            MessageMark.counted,
            MessageMark.hard_bounce,
            MessageMark.complaint,
            MessageMark.campaign_bucket,
        ).where(MessageMark.message_id == message.id, MessageMark.message_created_at == message.created_at)
    ).first()
    before = Contribution() if mark is None else Contribution(mark.counted, mark.hard_bounce, mark.complaint)
    if after == before:
        return after
    # A mark holding only delivery kinds (no bucket) has counted nothing here yet.
    bucket = day_bucket(message.created_at) if mark is None or mark.bucket is None else mark.bucket
    values = {
        "bucket": bucket,
        "counted": after.counted,
        "hard_bounce": after.hard_bounce,
        "complaint": after.complaint,
    }
    statement = insert(MessageMark).values(
        message_id=message.id, message_created_at=message.created_at, **values
    )
    keys = [MessageMark.message_id, MessageMark.message_created_at]
    session.execute(statement.on_conflict_do_update(index_elements=keys, set_=values))
    org = message.organization_id
    deltas.add(ScopeKey(org, bucket, ReputationScope.ORGANIZATION, org), before, after)
    deltas.add(ScopeKey(message.connector_id, bucket, ReputationScope.CONNECTOR, org), before, after)
    scopes = [org, message.connector_id]
    if message.task_id is not None:
        scopes.append(message.task_id)
        total = ScopeKey(message.task_id, CAMPAIGN_TOTAL, ReputationScope.CAMPAIGN, org)
        deltas.add(total, before, after)
        if mark is not None and mark.campaign_bucket is not None:
            deltas.add(replace(total, bucket=mark.campaign_bucket), before, after)
        elif after.counted:  # its slice is known once the campaign's total is written
            deltas.fresh[total][message.id] = after
    if message.outcomes_queue is not None:
        for scope_id in scopes:
            deltas.queues[scope_id].add(message.outcomes_queue)
    return after


def apply_deltas(session: Session, deltas: Deltas) -> list[ScopeKey]:
    """Add ``deltas`` to the counts (one upsert each, in one order); returns the scopes touched.

    A campaign's total comes first (bucket 0): its new value numbers the rows it counted for the
    first time, whose slices are then written in the same order.
    """
    touched = deltas.scopes()
    for key in touched:
        if key.scope is ReputationScope.CAMPAIGN and key.bucket != CAMPAIGN_TOTAL:
            continue  # written after its campaign's total
        counted = _add(session, key, deltas.counts[key])
        if key.scope is ReputationScope.CAMPAIGN:
            for slice_key in _slices(session, key, deltas.fresh.pop(key, {}), deltas, counted):
                _add(session, slice_key, deltas.counts[slice_key])
    return touched


def _slices(
    session: Session, total: ScopeKey, fresh: dict[uuid.UUID, Contribution], deltas: Deltas, counted: int
) -> list[ScopeKey]:
    """Number the campaign's newly counted rows up to ``counted`` (its total now), mark their slices
    and add them to ``deltas``; the slices to write, in order (the campaign's other slices included)."""
    by_slice: dict[int, list[uuid.UUID]] = defaultdict(list)
    for position, (message_id, after) in enumerate(fresh.items(), start=counted - len(fresh)):
        key = replace(total, bucket=campaign_slice(position))
        deltas.add(key, Contribution(), after)
        by_slice[key.bucket].append(message_id)
    for bucket, ids in by_slice.items():
        session.execute(
            update(MessageMark)
            .where(MessageMark.message_id.in_(ids))
            .values(campaign_bucket=bucket)
            .execution_options(synchronize_session=False)
        )
    return [key for key in deltas.scopes() if key.scope_id == total.scope_id and key.bucket > CAMPAIGN_TOTAL]


def _add(session: Session, key: ScopeKey, values: list[int]) -> int:
    """Add ``values`` to the counts of ``key``; its recipients afterwards."""
    recipients, hard, complaints = values
    statement = insert(ReputationCount).values(
        scope_id=key.scope_id,
        bucket=key.bucket,
        scope=key.scope.value,
        recipients=recipients,
        hard_bounces=hard,
        complaints=complaints,
    )
    excluded = statement.excluded
    upsert = statement.on_conflict_do_update(
        index_elements=["scope_id", "bucket"],
        set_={
            "recipients": ReputationCount.recipients + excluded.recipients,
            "hard_bounces": ReputationCount.hard_bounces + excluded.hard_bounces,
            "complaints": ReputationCount.complaints + excluded.complaints,
        },
    )
    return int(session.execute(upsert.returning(ReputationCount.recipients)).scalar_one())
