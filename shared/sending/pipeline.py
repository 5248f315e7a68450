"""The one send path: record a request's rows, then dispatch its API key's queue.

Every sender takes it: ``pilot.send_email`` and ``pilot.send_batch``, the seed's ``ResendConnector``
and ``pilot send``. A single email whose key's queue is empty takes the alone lane instead. The answer
is each recipient's result when the call returns (rows waiting for their key's next request are
``pending``). See docs/architecture.md, "The send path".
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared import connector_store as store
from shared.addresses import mailbox_key
from shared.db import raw_connection
from shared.errors import NotFound, PayloadInvalid, RateLimitBackendUnavailable
from shared.models import Connector, MessageStatus, Priority, Task
from shared.rate_limit import api_key_hash
from shared.reputation import guard
from shared.sending import budgets, cancellation, ledger, queue
from shared.sending.cancellation import CancelOutcome
from shared.sending.connectors import ConnectorView, view_of
from shared.sending.context import SendContext
from shared.sending.dispatch import Dispatcher
from shared.sending.ledger import Placement
from shared.sending.outcomes import RecipientResult, ResultStatus, SendOutcome
from shared.sending.payloads import (
    ResumePayload,
    SendBatchPayload,
    SendEmailPayload,
    parse_cancel,
    parse_send_batch,
    parse_send_email,
)
from shared.sending.queue import AloneRow
from shared.sending.recording import Prepared, prepare_rows, render
from shared.sending.refusals import record_invalid
from shared.sending.rendering import RenderedMessage
from shared.sending.retry_policy import PAUSED_CONNECTOR_WAIT_S
from shared.sending.suppression_check import suppressed_reasons
from shared.unsubscribe.links import UnsubscribeLinks

POSITIONAL_REFUSAL = (
    "args: positional arguments are not accepted; send the payload as keyword arguments (kwargs)"
)


@dataclass
class Recorded:
    """What recording wrote: the rows (in order) and their queue, and the answers given without a row."""

    connector_id: uuid.UUID
    dispatch_key: str | None
    ids: list[uuid.UUID] = field(default_factory=list)
    answered: list[RecipientResult] = field(default_factory=list)
    #: Recipients refused while recording (their rows written ``failed``, or answered without one).
    refused: int = 0


@dataclass
class Submission:
    """A request after recording: its rows (``recorded``), or the answer it got already (``outcome``:
    refused, recorded as failed)."""

    recorded: Recorded | None = None
    outcome: SendOutcome | None = None
    #: A request token of the rows' key was taken for them already (the alone lane's, handed on).
    token_held: bool = False


def send_email(
    ctx: SendContext, kwargs: Mapping[str, Any], *, task_ref: str, args: Sequence[Any] = ()
) -> SendOutcome:
    """Run ``pilot.send_email``: one email (one per mailbox of ``to``, ``cc`` and ``bcc``), or the rows
    named by ``message_ids``."""
    [outcome] = finish(ctx, [submit_email(ctx, kwargs, task_ref=task_ref, args=args, alone_ok=True)])
    return outcome


def send_batch(
    ctx: SendContext, kwargs: Mapping[str, Any], *, task_ref: str, args: Sequence[Any] = ()
) -> SendOutcome:
    """Run ``pilot.send_batch``: many emails of one connector, each checked on its own."""
    [outcome] = finish(ctx, [submit_batch(ctx, kwargs, task_ref=task_ref, args=args)])
    return outcome


def submit_email(
    ctx: SendContext,
    kwargs: Mapping[str, Any],
    *,
    task_ref: str,
    args: Sequence[Any] = (),
    alone_ok: bool = False,
) -> Submission:
    """Record ``pilot.send_email`` kwargs (or their refusal); nothing is dispatched yet.

    ``alone_ok``: a single email whose key's queue is empty is sent now, alone (its submission holds
    the answer); only for a caller that dispatches right after, as :func:`finish` does.
    """
    if args:
        return Submission(outcome=_refuse_positional(ctx, args, kwargs, task_ref=task_ref))
    try:
        payload = parse_send_email(kwargs)
    except PayloadInvalid as exc:
        return Submission(outcome=record_invalid(ctx, kwargs, str(exc), task_ref=task_ref))
    # Scheduled emails wait in the ledger; emails with attachments store their bytes as they are recorded.
    if (
        alone_ok
        and isinstance(payload, SendEmailPayload)
        and not (payload.scheduled_at or payload.attachments)
    ):
        return _submit_alone(ctx, kwargs, payload, task_ref=task_ref)
    return _submit(ctx, kwargs, payload, task_ref=task_ref)


def submit_batch(
    ctx: SendContext, kwargs: Mapping[str, Any], *, task_ref: str, args: Sequence[Any] = ()
) -> Submission:
    """Record ``pilot.send_batch`` kwargs (or their refusal); nothing is dispatched yet."""
    if args:
        return Submission(outcome=_refuse_positional(ctx, args, kwargs, task_ref=task_ref))
    try:
        payload = parse_send_batch(kwargs)
    except PayloadInvalid as exc:
        return Submission(outcome=record_invalid(ctx, kwargs, str(exc), task_ref=task_ref))
    return _submit(ctx, kwargs, payload, task_ref=task_ref)


def finish(
    ctx: SendContext, submissions: Sequence[Submission], *, patience_s: float = 0.0
) -> list[SendOutcome]:
    """Dispatch the queues the submissions wrote to (once each), then answer each submission.

    ``patience_s``: how long the dispatch may wait for its key's next request tokens (see
    :meth:`Dispatcher.run`); a worker task waits for none, a caller holding on for its answer may.
    """
    held: dict[str, bool] = {}
    for submission in submissions:
        key = submission.recorded.dispatch_key if submission.recorded is not None else None
        if key is not None:
            held[key] = held.get(key, False) or submission.token_held
    decided: dict[uuid.UUID, RecipientResult] = {}
    for key, token_held in held.items():
        decided.update(Dispatcher(ctx).run(key, patience_s=patience_s, token_held=token_held))
    return [_answer(ctx, submission, decided) for submission in submissions]


def _answer(
    ctx: SendContext, submission: Submission, decided: Mapping[uuid.UUID, RecipientResult]
) -> SendOutcome:
    if submission.outcome is not None:
        return submission.outcome
    recorded = submission.recorded
    assert recorded is not None  # a submission holds one or the other
    return SendOutcome([*results(ctx, recorded, decided), *recorded.answered])


def dispatch(ctx: SendContext, key: str) -> dict[uuid.UUID, RecipientResult]:
    """Run ``pilot.dispatch``: send the queue of API key ``key`` while its tokens allow."""
    return Dispatcher(ctx).run(key)


def cancel(ctx: SendContext, kwargs: Mapping[str, Any], *, actor: str) -> CancelOutcome:
    """Run ``pilot.cancel``: the named rows that have not left become ``cancelled``; each row's answer.

    Raises :class:`PayloadInvalid` naming the field if the kwargs name no rows, or name them two ways.
    """
    selection = cancellation.selection_of(parse_cancel(kwargs))
    with ctx.held_connection() as connection, Session(bind=connection) as session:
        outcome = cancellation.cancel(raw_connection(session), selection, actor=actor)
        session.commit()
    ctx.metrics.count_results([ResultStatus.CANCELLED] * outcome.counts().get("cancelled", 0))
    return outcome


def _refuse_positional(
    ctx: SendContext, args: Sequence[Any], kwargs: Mapping[str, Any], *, task_ref: str
) -> SendOutcome:
    """A payload sent as positional ``args`` is refused, and recorded against what it names."""
    payload = args[0] if len(args) == 1 and not kwargs and isinstance(args[0], Mapping) else kwargs
    return record_invalid(ctx, payload, POSITIONAL_REFUSAL, task_ref=task_ref)


def _submit(
    ctx: SendContext,
    kwargs: Mapping[str, Any],
    payload: SendEmailPayload | ResumePayload | SendBatchPayload,
    *,
    task_ref: str,
    rendered: list[RenderedMessage] | None = None,
    token_held: bool = False,
) -> Submission:
    try:
        recorded = record(ctx, payload, task_ref=task_ref, rendered=rendered)
    except PayloadInvalid as exc:
        return Submission(outcome=record_invalid(ctx, kwargs, str(exc), task_ref=task_ref))
    return Submission(recorded=recorded, token_held=token_held)


def _submit_alone(
    ctx: SendContext, kwargs: Mapping[str, Any], payload: SendEmailPayload, *, task_ref: str
) -> Submission:
    """Send a single email alone if it may go so; else record it for its key's queue."""
    dispatcher = Dispatcher(ctx)
    view = dispatcher.view(payload.connector_id)
    if view is None or view.api_key is None or view.blocked is not None:
        return _submit(ctx, kwargs, payload, task_ref=task_ref)
    if payload.organization_id not in (None, view.organization_id):
        return _submit(ctx, kwargs, payload, task_ref=task_ref)  # refused there, naming the field
    try:
        messages = render(payload, view, task_ref=task_ref, prepared=Prepared(view), links=ctx.unsubscribe)
    except PayloadInvalid:
        return _submit(ctx, kwargs, payload, task_ref=task_ref)
    if len(messages) != 1:
        return _submit(ctx, kwargs, payload, task_ref=task_ref, rendered=messages)
    [message] = messages
    row = AloneRow(
        message.id,
        message.idempotency_key,
        view.organization_id,
        view.id,
        payload.task_id,
        message.recipient,
        message.subject,
        message.request,
        topic=message.topic,
        priority=payload.resolved_priority,
        outcomes_queue=payload.outcomes_queue,
    )
    alone = dispatcher.send_alone(row, view)
    if alone.result is not None:
        return Submission(outcome=SendOutcome([alone.result]))
    return _submit(ctx, kwargs, payload, task_ref=task_ref, rendered=messages, token_held=alone.token_held)


def record(
    ctx: SendContext,
    payload: SendEmailPayload | ResumePayload | SendBatchPayload,
    *,
    task_ref: str,
    rendered: list[RenderedMessage] | None = None,
) -> Recorded:
    """Check the routing fields and write the rows in their key's queue (committed on return).

    A resume (``message_ids``) writes nothing new: the connector's rows among them that wait
    unassigned, or in an old key's queue, join its key's queue. Raises :class:`PayloadInvalid` for an
    unknown connector or task, a foreign organization, or an email that cannot be rendered.
    ``rendered``: the payload's messages, rendered already for the same connector.
    """
    with ctx.held_connection() as connection, Session(bind=connection, expire_on_commit=False) as session:
        try:
            view = _connector(ctx, session, payload)
            if isinstance(payload, ResumePayload):
                recorded = _resume(session, payload, view)
            else:
                recorded = _write(ctx, session, payload, view, task_ref=task_ref, rendered=rendered)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        return recorded


def _write(
    ctx: SendContext,
    session: Session,
    payload: SendEmailPayload | SendBatchPayload,
    view: ConnectorView,
    *,
    task_ref: str,
    rendered: list[RenderedMessage] | None = None,
) -> Recorded:
    placement = _placement(ctx, session, view, payload.resolved_priority, payload.task_id)
    prepared = prepare_rows(
        session,
        payload,
        view,
        task_ref=task_ref,
        placement=placement,
        rendered=rendered,
        links=ctx.unsubscribe,
    )
    suppressed = 0
    if placement.until is not None:
        # Rows made to wait are answered now if their recipient is suppressed (as a dispatch would),
        # not hours later; the dispatch checks the others again when their time comes.
        suppressed = _answer_suppressed(session, view, prepared.messages)
    refused_rows = prepared.refused - len(prepared.answered)
    waiting = len(prepared.ids) - refused_rows - suppressed if placement.until is not None else 0
    ctx.metrics.count_results(
        [ResultStatus.FAILED] * prepared.refused
        + [ResultStatus.SUPPRESSED] * suppressed
        + [ResultStatus.DEFERRED] * waiting
    )
    key = placement.dispatch_key if placement.until is None else None
    return Recorded(view.id, key, prepared.ids, prepared.answered, prepared.refused)


def _answer_suppressed(session: Session, view: ConnectorView, messages: Sequence[RenderedMessage]) -> int:
    """Mark the waiting rows of suppressed recipients ``suppressed``; how many."""
    waiting = [message for message in messages if message.refusal is None]
    asked = {message.id: (mailbox_key(message.recipient), message.topic) for message in waiting}
    reasons = suppressed_reasons(session, view.organization_id, asked.values())
    found = {message_id: reasons[pair] for message_id, pair in asked.items() if pair in reasons}
    ledger.mark_suppressed(session, found)
    return len(found)


def _placement(
    ctx: SendContext, session: Session, view: ConnectorView, priority: Priority, task_id: uuid.UUID | None
) -> Placement:
    """Where a connector's new rows of ``priority`` go: its key's queue; or waiting, when it cannot
    send now, the reputation guard holds its bulk mail, or its budget is known to be spent for them
    (they come back behind the rows parked before them)."""
    if view.blocked is not None or view.api_key is None:
        ctx.metrics.count_deferrals("connector_blocked")
        until = ledger.defer_until(PAUSED_CONNECTOR_WAIT_S, ctx.clock())
        return Placement(None, until, view.blocked or "connector unavailable", priority)
    key = api_key_hash(view.api_key.get_secret_value())
    if priority is Priority.BULK:
        held = guard.hold_reason(session, view.organization_id, view.id, task_id)
        if held is not None:
            ctx.metrics.count_deferrals("reputation")
            return Placement(key, ledger.defer_until(guard.HOLD_WAIT_S, ctx.clock()), held, priority)
    try:
        refused = ctx.spent_budgets.refusal(ctx.limiter, view.id, 1, view.limits, priority)
    except RateLimitBackendUnavailable:
        return Placement(key, priority=priority)  # the dispatcher fails closed and says so
    if refused is None:
        return Placement(key, priority=priority)
    wait = budgets.refusal_wait(refused)
    now = ctx.clock()
    until = budgets.parked_until(
        ctx, raw_connection(session), view.id, view.limits, count=1, wait=wait, now=now, priority=priority
    )
    ctx.metrics.count_deferrals(wait.kind)
    return Placement(key, until, wait.reason, priority)


def _resume(session: Session, payload: ResumePayload, view: ConnectorView) -> Recorded:
    rows = ledger.load_messages(session, payload.message_ids, connector_id=view.id)
    key = api_key_hash(view.api_key.get_secret_value()) if view.api_key is not None else None
    stray = [
        row.id
        for row in rows
        if row.status in (MessageStatus.QUEUED, MessageStatus.DEFERRED) and row.dispatch_key != key
    ]
    queue.rekey(raw_connection(session), stray, key)
    return Recorded(view.id, key, [row.id for row in rows])


def results(
    ctx: SendContext, recorded: Recorded, decided: Mapping[uuid.UUID, RecipientResult]
) -> list[RecipientResult]:
    """Each recorded row's result: what the dispatch decided, else the row as it stands now."""
    missing = [message_id for message_id in recorded.ids if message_id not in decided]
    found: dict[uuid.UUID, RecipientResult] = {}
    if missing:
        with ctx.held_connection() as connection, Session(bind=connection) as session:
            rows = ledger.load_messages(session, missing, connector_id=recorded.connector_id)
            found = {row.id: RecipientResult.of(row) for row in rows}
            # Ends the read with a commit: a rollback would also drop the connection's prepared
            # statements (psycopg clears them on every rollback), re-parsing the next sends'.
            session.commit()
    merged = {**found, **decided}
    return [merged[message_id] for message_id in recorded.ids if message_id in merged]


def prepare(
    session: Session,
    payload: SendEmailPayload | SendBatchPayload,
    *,
    task_ref: str,
    links: UnsubscribeLinks | None = None,
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """Write the payload's rows in ``session``'s transaction, not yet in any key's queue: the resume
    task published after the commit puts them there (the outbox). Returns the connector id and the
    rows' ids. ``links`` makes unsubscribe links (none without it).

    Raises :class:`PayloadInvalid` for bad routing, an email that cannot be rendered, or an
    ``idempotency_key`` already used for other content (nothing of this payload is written then).
    """
    connector = _load(session, payload.connector_id)
    if connector is None:
        raise PayloadInvalid(f"connector_id: no connector {payload.connector_id}")
    view = view_of(connector, None, None)  # no key is needed: the rows join no queue yet
    _check_routing(session, payload, view)
    placement = Placement(None, priority=payload.resolved_priority)
    prepared = prepare_rows(session, payload, view, task_ref=task_ref, placement=placement, links=links)
    if prepared.answered:
        raise PayloadInvalid("; ".join(str(result.reason) for result in prepared.answered))
    return view.id, prepared.ids


def _connector(
    ctx: SendContext, session: Session, payload: SendEmailPayload | ResumePayload | SendBatchPayload
) -> ConnectorView:
    """The payload's connector (cached), after checking it and the task belong to its organization."""

    def load() -> ConnectorView | None:
        connector = _load(session, payload.connector_id)
        return None if connector is None else view_of(connector, ctx.keyring, ctx.settings.resend_api_key)

    view = ctx.connectors.get(payload.connector_id, load)
    if view is None:
        raise PayloadInvalid(f"connector_id: no connector {payload.connector_id}")
    _check_routing(session, payload, view)
    return view


def _load(session: Session, connector_id: uuid.UUID) -> Connector | None:
    try:
        return store.get_connector(session, connector_id)
    except NotFound:
        return None


def _check_routing(
    session: Session, payload: SendEmailPayload | ResumePayload | SendBatchPayload, view: ConnectorView
) -> None:
    if payload.organization_id is not None and payload.organization_id != view.organization_id:
        raise PayloadInvalid("organization_id: the connector belongs to another organization")
    if payload.task_id is not None:
        owner = _task_owner(session, payload.task_id, view.organization_id)
        if owner != view.organization_id:
            raise PayloadInvalid("task_id: the task belongs to another organization")


def _task_owner(session: Session, task_id: uuid.UUID, organization_id: uuid.UUID) -> uuid.UUID | None:
    """The organization of task ``task_id``, creating the task for ``organization_id`` on first use.

    ``task_id`` is the caller's correlation id: an unknown one becomes its ``tasks`` row. The insert
    does nothing when the row exists (a concurrent first use waits for the other's commit, then reads
    its row), so a task of another organization keeps its owner and the send is refused.
    """
    session.execute(
        insert(Task)
        .values(id=task_id, organization_id=organization_id)
        .on_conflict_do_nothing(index_elements=[Task.id])
    )
    return session.scalar(select(Task.organization_id).where(Task.id == task_id))


__all__ = [
    "Recorded",
    "Submission",
    "cancel",
    "dispatch",
    "finish",
    "prepare",
    "record",
    "results",
    "send_batch",
    "send_email",
    "submit_batch",
    "submit_email",
]
