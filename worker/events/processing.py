"""Apply a stored webhook event: one metric row, the message status, suppression, task figures, reputation.

:func:`apply_event` is idempotent (one metric row per event; the status recomputed from all of them;
task figures and reputation counts add what the row adds, once) and locks message before task
everywhere. :func:`process_events` applies a batch in one transaction; if that fails,
:func:`process_event` takes each id alone. See docs/architecture.md, "Webhooks".
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from shared.address_hashing import anonymised_event, is_hashed
from shared.addresses import mailbox_key
from shared.counters import delivery
from shared.db import transaction
from shared.errors import PilotError
from shared.models import OPEN_STATUSES, ORPHAN_PREFIX, EmailMessage, EmailMetric, WebhookEvent
from shared.reputation import counting, guard
from shared.reputation.guard import Evaluation
from shared.resend_events import EventType, TrackingEvent, parse_event
from shared.settings import Settings, get_settings
from worker.events.bounce_policy import SoftBouncePolicy
from worker.events.lattice import EVENT_STATUS, status_from_events
from worker.events.suppression import apply_suppression

logger = logging.getLogger(__name__)

#: Webhooks can outrun the commit of the send that produced them; after this long an event whose
#: email is still unknown is kept as an orphan (its reason in ``webhook_events.error``).
DEFAULT_ORPHAN_AFTER = timedelta(minutes=10)
#: Events that may suppress the recipient.
SUPPRESSING = frozenset({EventType.BOUNCED, EventType.COMPLAINED, EventType.SUPPRESSED})
#: Events that concern no sent email of ours: stored and acknowledged, no metric row.
NOT_TRACKED = frozenset({EventType.UNKNOWN, EventType.RECEIVED})


class NotInLedgerYet(PilotError):
    """Raised when an event's email is not (yet) in the send ledger; retry later."""


@dataclass(frozen=True)
class Outcome:
    """What processing did: ``applied``, ``ignored``, ``orphan`` or ``already_processed``."""

    kind: str
    message_id: uuid.UUID | None = None
    status: str | None = None
    suppression: str | None = None
    #: The reputation scopes this event's counts were judged in (empty when it changed no count); for
    #: metrics, not part of what the event came to.
    reputation: tuple[Evaluation, ...] = field(default=(), compare=False)


@dataclass
class BatchOutcome:
    """What :func:`process_events` did per event id, and the ids whose email is not in the ledger yet."""

    outcomes: dict[uuid.UUID, Outcome] = field(default_factory=dict)
    not_in_ledger: list[uuid.UUID] = field(default_factory=list)
    #: The reputation scopes the batch's counts were judged in.
    reputation: list[Evaluation] = field(default_factory=list)


def process_events(
    session_factory: sessionmaker[Session],
    event_ids: Sequence[uuid.UUID],
    *,
    now: datetime | None = None,
    orphan_after: timedelta = DEFAULT_ORPHAN_AFTER,
    policy: SoftBouncePolicy | None = None,
    settings: Settings | None = None,
) -> BatchOutcome:
    """Process stored events in one transaction, with the rules of :func:`process_event`.

    Locks are taken in one order everywhere (events by id, then messages, then tasks by id), so
    batches and single events serialize without deadlocking. An event whose email is not in the
    ledger yet is left unprocessed and listed in ``not_in_ledger`` (nothing of it was written: the
    lookup comes first). Any other error propagates and nothing is committed.
    """
    now = now or datetime.now(UTC)
    policy = policy or SoftBouncePolicy()
    result = BatchOutcome()
    figures = delivery.Figures()
    deltas = counting.Deltas()
    with transaction(session_factory) as session, session.no_autoflush:
        events = _locked_events(session, event_ids)
        for event_id in event_ids:
            if event_id not in events:
                result.outcomes[event_id] = Outcome("already_processed")
        # Messages in one order too (by Resend id), so two batches never wait on each other in a cycle.
        for event in sorted(events.values(), key=_email_order):
            outcome = _apply_in_batch(
                session,
                event,
                now=now,
                policy=policy,
                orphan_after=orphan_after,
                figures=figures,
                deltas=deltas,
            )
            if outcome is None:
                result.not_in_ledger.append(event.id)
            else:
                result.outcomes[event.id] = outcome
        session.flush()
        delivery.apply(session, figures)
        # Counts last, in one order (after events, messages and tasks): batches never deadlock.
        touched = counting.apply_deltas(session, deltas)
        result.reputation = guard.evaluate(
            session, touched, settings or get_settings(), now=now, queues=deltas.queues
        )
    return result


def _apply_in_batch(
    session: Session,
    event: WebhookEvent,
    *,
    now: datetime,
    policy: SoftBouncePolicy,
    orphan_after: timedelta,
    figures: delivery.Figures,
    deltas: counting.Deltas,
) -> Outcome | None:
    """:func:`apply_event` with the orphan rule of :func:`process_event`; ``None``: not in the ledger yet."""
    give_up = now - event.received_at >= orphan_after
    try:
        return apply_event(
            session, event, now=now, policy=policy, last_chance=give_up, figures=figures, deltas=deltas
        )
    except NotInLedgerYet as exc:
        if not give_up:
            # Counted as process_event's record_failure would: the sweep stops after too many.
            event.attempts += 1
            event.error = f"{type(exc).__name__}: {exc}"[:500]
            return None
        return _keep_as_orphan(event, now, exc)


def _keep_as_orphan(event: WebhookEvent, now: datetime, exc: NotInLedgerYet) -> Outcome:
    """Mark ``event`` processed with the orphan reason: its email never reached the ledger."""
    _finish(event, now, error=f"{ORPHAN_PREFIX}{exc}")
    logger.warning("webhook event %s kept as orphan: %s", event.svix_id, exc)
    return Outcome("orphan")


def _locked_events(session: Session, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, WebhookEvent]:
    """The unprocessed events among ``event_ids``, locked in id order."""
    rows = session.scalars(
        select(WebhookEvent)
        .where(WebhookEvent.id.in_(event_ids), WebhookEvent.processed_at.is_(None))
        .order_by(WebhookEvent.id)
        .with_for_update()
    ).all()
    return {event.id: event for event in rows}


def _email_order(event: WebhookEvent) -> str:
    data = event.payload.get("data") if isinstance(event.payload, dict) else None
    email_id = data.get("email_id") if isinstance(data, dict) else None
    return email_id if isinstance(email_id, str) else ""


def process_event(
    session_factory: sessionmaker[Session],
    event_id: uuid.UUID,
    *,
    now: datetime | None = None,
    orphan_after: timedelta = DEFAULT_ORPHAN_AFTER,
    policy: SoftBouncePolicy | None = None,
    settings: Settings | None = None,
) -> Outcome:
    """Process stored event ``event_id`` in one transaction.

    Raises :class:`NotInLedgerYet` while the event is younger than ``orphan_after`` and its email is
    unknown; after that the event is marked processed with ``error = "orphan: …"``. Any other error
    is recorded on the event (``attempts``, ``error``) in its own transaction and re-raised.
    """
    now = now or datetime.now(UTC)
    try:
        with transaction(session_factory) as session:
            event = _locked_event(session, event_id)
            if event is None or event.processed_at is not None:
                return Outcome("already_processed")
            give_up = now - event.received_at >= orphan_after
            try:
                deltas = counting.Deltas()
                outcome = apply_event(
                    session, event, now=now, policy=policy, last_chance=give_up, deltas=deltas
                )
                touched = counting.apply_deltas(session, deltas)
                judged = guard.evaluate(
                    session, touched, settings or get_settings(), now=now, queues=deltas.queues
                )
                return replace(outcome, reputation=tuple(judged))
            except NotInLedgerYet as exc:
                if not give_up:
                    raise
                return _keep_as_orphan(event, now, exc)
    except Exception as exc:
        record_failure(session_factory, event_id, exc)
        raise


def apply_event(
    session: Session,
    event: WebhookEvent,
    *,
    now: datetime | None = None,
    policy: SoftBouncePolicy | None = None,
    last_chance: bool = False,
    figures: delivery.Figures | None = None,
    deltas: counting.Deltas | None = None,
) -> Outcome:
    """Apply ``event`` (a stored, verified webhook) within ``session``'s transaction.

    ``last_chance`` lets a message found only by its tags be adopted even while its send still looks
    in flight (the ledger never got the Resend id). With ``figures``, the new metric row is added
    there for the caller to count (``delivery.apply``), instead of counting it here. With
    ``deltas``, what the event changes in the reputation counts is added there for the caller to
    write (``counting.apply_deltas``). Raises :class:`NotInLedgerYet` before writing anything.
    """
    now = now or datetime.now(UTC)
    parsed = parse_event(event.payload)
    if parsed.type in NOT_TRACKED:
        _finish(event, now)
        return Outcome("ignored")
    message = find_message(session, parsed, adopt_in_flight=last_chance)
    erased = is_hashed(message.recipient)
    if erased:
        # A late event about an erased person (shared.erasure): kept without their address; they
        # are suppressed for everything already.
        event.payload = anonymised_event(event.payload, message.organization_id)
        parsed = parse_event(event.payload)
    written = _insert_metric(session, event, parsed, message)
    status = _refresh_status(session, message)
    if parsed.type in SUPPRESSING:
        # Suppression rules may query the ledger: let them see this batch's changes (batches run
        # without autoflush; these events are rare, so the extra flush costs little).
        session.flush()
    suppression = (
        None if erased else apply_suppression(session, message, parsed, policy=policy or SoftBouncePolicy())
    )
    if deltas is not None and parsed.type in counting.COUNTED_EVENTS:
        counting.mark_message(session, message, deltas)
    if written and message.task_id is not None:
        # After the suppression's recipient lock: marks are taken after it everywhere.
        row = delivery.MetricRow(
            message.id, message.task_id, message.created_at, parsed.type.value, _bounce_type(parsed)
        )
        if figures is not None:
            figures.add(row)
        else:
            delivery.apply(session, delivery.Figures([row]))
    _finish(event, now)
    return Outcome("applied", message_id=message.id, status=status, suppression=suppression)


def find_message(session: Session, event: TrackingEvent, *, adopt_in_flight: bool = False) -> EmailMessage:
    """The ledger row of ``event``'s email, locked: by Resend id first, then by our tags.

    Raises :class:`NotInLedgerYet` when neither finds it, or when only the tags do and the send is
    still in flight (applying then would race the worker's own commit of ``sent``).
    """
    if event.email_id is not None:
        message = _locked_message(session, EmailMessage.resend_email_id == event.email_id)
        if message is not None:
            return message
    message = _by_tags(session, event)
    if message is None:
        raise NotInLedgerYet(f"no ledger row for email {event.email_id} (tags: {dict(event.tags)})")
    if message.resend_email_id not in (None, event.email_id):
        raise NotInLedgerYet(f"tagged message {message.id} belongs to another email")
    if message.status in OPEN_STATUSES and message.resend_email_id is None and not adopt_in_flight:
        raise NotInLedgerYet(f"message {message.id} is still {message.status}")
    if message.resend_email_id is None:
        message.resend_email_id = event.email_id
    return message


def _by_tags(session: Session, event: TrackingEvent) -> EmailMessage | None:
    if event.tagged_message_id is not None:
        message = _locked_message(session, EmailMessage.id == event.tagged_message_id)
        if message is not None and event.tagged_task_id in (None, message.task_id):
            return message
        return None
    if event.tagged_task_id is None or event.recipient is None:
        return None
    # One recipient per email: within a task, the recipient names the message if it names one only.
    # Only a row Resend has not named is looked for: one it named is found by its email id, and
    # an event of another email is not its.
    candidates = session.scalars(
        select(EmailMessage.id)
        .where(EmailMessage.task_id == event.tagged_task_id)
        .where(func.lower(EmailMessage.recipient) == event.recipient.lower())
        .where(EmailMessage.resend_email_id.is_(None))
        .limit(2)
    ).all()
    if len(candidates) != 1:
        return None
    return _locked_message(session, EmailMessage.id == candidates[0])


def _locked_message(session: Session, condition: Any) -> EmailMessage | None:
    return session.scalars(
        select(EmailMessage).where(condition).limit(1).with_for_update(key_share=True)
    ).first()


def _locked_event(session: Session, event_id: uuid.UUID) -> WebhookEvent | None:
    return session.scalars(select(WebhookEvent).where(WebhookEvent.id == event_id).with_for_update()).first()


def _bounce_type(parsed: TrackingEvent) -> str | None:
    return parsed.bounce_type.value if parsed.bounce_type else None


def _insert_metric(
    session: Session, event: WebhookEvent, parsed: TrackingEvent, message: EmailMessage
) -> bool:
    """Write the event's metric row; whether it was new (a replayed event's row exists already)."""
    values = {
        "message_id": message.id,
        "task_id": message.task_id,
        "connector_id": message.connector_id,
        "webhook_event_id": event.id,
        "event": parsed.type.value,
        "recipient": parsed.recipient or mailbox_key(message.recipient),
        "subject": parsed.subject or message.subject,
        "status": EVENT_STATUS.get(parsed.type.value),
        "metadata_": metric_metadata(event, parsed),
        # The event's own time orders the lattice; arrival time only when Resend gave none.
        "occurred_at": parsed.created_at or event.received_at,
    }
    statement = insert(EmailMetric).values(values)
    written = session.execute(
        statement.on_conflict_do_nothing(index_elements=["webhook_event_id", "occurred_at"]).returning(
            EmailMetric.id
        )
    ).first()
    return written is not None


def metric_metadata(event: WebhookEvent, parsed: TrackingEvent) -> dict[str, Any]:
    """What an ``email_metrics`` row keeps of the event beside its columns (no ``None`` values)."""
    values = {
        "svix_id": event.svix_id,
        "resend_type": parsed.raw_type,
        "resend_email_id": parsed.email_id,
        "tags": dict(parsed.tags) or None,
        "bounce_type": _bounce_type(parsed),
        "bounce_type_source": parsed.bounce_type_source.value if parsed.bounce_type_source else None,
        "bounce_subtype": parsed.bounce_subtype,
        "bounce_message": parsed.bounce_message,
        "click_link": parsed.click_link,
        "failed_reason": parsed.failed_reason,
        "suppressed_reason": parsed.suppressed_reason,
    }
    return {key: value for key, value in values.items() if value is not None}


def _refresh_status(session: Session, message: EmailMessage) -> str:
    """Recompute the message status from all its metric rows (order-independent by construction)."""
    events = session.execute(
        select(EmailMetric.event, EmailMetric.occurred_at).where(EmailMetric.message_id == message.id)
    ).all()
    status = status_from_events(((row.event, row.occurred_at) for row in events), base=message.status)
    if status is not None and status != message.status:
        message.status = status
    return message.status


def _finish(event: WebhookEvent, now: datetime, *, error: str | None = None) -> None:
    event.processed_at = now
    event.attempts += 1
    event.error = error


def record_failure(session_factory: sessionmaker[Session], event_id: uuid.UUID, exc: BaseException) -> None:
    """Count a failed attempt on the event and keep its reason (the class, and our own messages)."""
    reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, PilotError) else type(exc).__name__
    try:
        with transaction(session_factory) as session:
            session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id == event_id, WebhookEvent.processed_at.is_(None))
                .values(attempts=WebhookEvent.attempts + 1, error=reason[:500])
            )
    except Exception:  # the database may be what failed; the original error matters more
        logger.warning("could not record the failure of webhook event %s", event_id, exc_info=True)
