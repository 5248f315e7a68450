"""The single-recipient fast path of ``pilot.send_email``: one read, two writes, two Redis calls, one POST.

It takes only the common case: a new email to one recipient, no ``tasks`` row, a connector that may
send. One read claims the key (:func:`worker.fast_ledger.claim`: the recipient's suppression, the
connector's live status, the locks), the tokens are taken, the row is written already ``sending``
(the attempt is committed before the call: a crash mid-call still counts it), and the answer is
recorded with the usage and the locks' release by one more statement. Everything else returns None
before touching a token, and the general path (:mod:`worker.sending`) runs instead; an outcome other
than "sent" after the tokens are taken is handed to the general path's code through ``handoff`` (one
:class:`Wait` or :class:`Failed` step, on the row written for it), so each rule lives once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from pydantic import SecretStr
from sqlalchemy.orm import Session

from shared.errors import PayloadInvalid, RateLimitBackendUnavailable, ResendError
from shared.models import Connector, EmailMessage
from shared.rate_limit import Decision
from worker import fast_ledger, metrics
from worker.connector_cache import SENDABLE_STATUSES, ConnectorView, view_of
from worker.context import SendContext
from worker.fast_ledger import ClaimedRow
from worker.ledger import OPEN_STATUSES
from worker.pacing import take_request_token
from worker.payloads import SendEmailPayload
from worker.rendering import RenderedMessage, render_email
from worker.results import RecipientResult, SendOutcome

#: Wait when Redis (the buckets) cannot be reached: fail closed, the row waits in PostgreSQL.
BACKEND_DOWN_WAIT_S = 30.0


@dataclass(frozen=True)
class Wait:
    """Not now: wait ``seconds`` (a deferral in the row if ``defer`` or if long), no attempt used.

    ``kind`` names the reason for the metrics (``hour``, ``day``, ``requests``, ``cooldown``...).
    """

    seconds: float
    reason: str
    kind: str
    defer: bool = False


@dataclass(frozen=True)
class Failed:
    """Resend (or the stored body's check) refused the attempt: the general path's error rules apply."""

    error: ResendError | PayloadInvalid


Step = Wait | Failed
#: ``handoff(connector_id, message_id, api_key, step)``: apply ``step`` to the claimed row, commit.
Handoff = Callable[[uuid.UUID, uuid.UUID, SecretStr, Step], SendOutcome]


def send_one(
    ctx: SendContext, payload: SendEmailPayload, *, task_ref: str, handoff: Handoff
) -> SendOutcome | None:
    """Send ``payload`` by the fast path, or None (nothing sent, no token taken) if it does not apply."""
    view = _connector(ctx, payload)
    if view is None:
        return None
    try:
        messages = render_email(
            payload, connector_id=view.id, task_ref=task_ref, default_from=view.default_from
        )
    except PayloadInvalid:
        return None  # the general path records why
    if len(messages) != 1:
        return None
    [message] = messages
    with ctx.held_autocommit() as conn:
        row = fast_ledger.claim(
            conn, message, organization_id=view.organization_id, connector_id=view.id, now=ctx.clock()
        )
        if not row.locked:
            if message.caller_keyed and not row.fresh:
                return None  # the key may name other content: the general path checks for a conflict
            return _answer_unclaimed(row, ctx.clock())
        outcome = _send_claimed(ctx, conn, view, row, message, handoff)
        if outcome is None or row.status != "sent":
            fast_ledger.unlock(conn, row)  # record_sent released it with the outcome
        return outcome


def _connector(ctx: SendContext, payload: SendEmailPayload) -> ConnectorView | None:
    if payload.task_id is not None:
        return None  # the task's counts are the general path's
    view = ctx.connectors.get(payload.connector_id, lambda: _load(ctx, payload.connector_id))
    if view is None or view.api_key is None or view.blocked:
        return None
    if payload.organization_id is not None and payload.organization_id != view.organization_id:
        return None
    return view


def _load(ctx: SendContext, connector_id: uuid.UUID) -> ConnectorView | None:
    with Session(ctx.engine) as session:
        connector = session.get(Connector, connector_id)
        if connector is None:
            return None
        return view_of(connector, ctx.keyring, ctx.settings.resend_api_key)


def _answer_unclaimed(row: ClaimedRow, now: datetime) -> SendOutcome | None:
    """A row this claim did not lock: answered here only if it is final or deferred till later."""
    waiting = row.status == "deferred" and row.next_attempt_at is not None and row.next_attempt_at > now
    if row.status in OPEN_STATUSES and not waiting:
        return None  # to send (a retry), suppress or skip: the general path decides under its lock
    return SendOutcome([RecipientResult.of(_as_message(row))])


def _send_claimed(
    ctx: SendContext,
    conn: psycopg.Connection[Any],
    view: ConnectorView,
    row: ClaimedRow,
    message: RenderedMessage,
    handoff: Handoff,
) -> SendOutcome | None:
    if row.connector_status not in SENDABLE_STATUSES:
        ctx.connectors.forget(view.id)
        return None
    assert view.api_key is not None  # _connector let only a sendable view through
    wait = _take_tokens(ctx, view)
    if wait is not None:
        if not fast_ledger.write_queued(conn, row, message, connector_id=view.id):
            return None
        return handoff(view.id, row.id, view.api_key, wait)
    if not fast_ledger.start_attempt(conn, row, message, connector_id=view.id):
        return None
    try:
        answer = ctx.resend_client(view.api_key).send_email(
            message.request, idempotency_key=message.idempotency_key
        )
    except (ResendError, PayloadInvalid) as exc:
        return handoff(view.id, row.id, view.api_key, Failed(exc))
    metrics.count_response(200)
    ctx.learn_rate(view.api_key, answer.rate_limit.limit)
    fast_ledger.record_sent(conn, row, email_id=answer.email_id, at=ctx.clock(), connector_id=view.id)
    return SendOutcome([RecipientResult(row.recipient, "sent", None, answer.email_id, str(row.id))])


def _take_tokens(ctx: SendContext, view: ConnectorView) -> Wait | None:
    """One request token (short pacing waits slept), then one email token; why not, if either is denied.

    A budget this process saw spent is peeked at first, so a backlog waiting for it takes no request
    tokens (:mod:`worker.spent_budgets`); a request token taken when the budget then refuses is spent.
    """
    assert view.api_key is not None
    try:
        refused = ctx.spent_budgets.refusal(ctx.limiter, view.id, 1, view.limits)
        if refused is not None:
            return budget_wait(refused)
        decision = take_request_token(ctx.limiter, view.api_key.get_secret_value(), ctx.sleep)
        if not decision.granted:
            reason = f"waiting for the API key's {decision.blocked_by}"
            return Wait(decision.wait_seconds, reason, decision.blocked_by or "requests")
        decision = ctx.limiter.acquire_emails(view.id, 1, view.limits)
        if not decision.granted:
            ctx.spent_budgets.saw_spent(view.id)
            return budget_wait(decision)
        metrics.sample_buckets(ctx.limiter, view.id, view.limits)
    except RateLimitBackendUnavailable as exc:
        # The broker is most likely the same Redis: park the row in PostgreSQL, not in a retry.
        return Wait(BACKEND_DOWN_WAIT_S, str(exc), "redis_unavailable", defer=True)
    return None


def budget_wait(decision: Decision) -> Wait:
    """The wait a refusal of the connector's email budget asks for (both send paths)."""
    return Wait(
        decision.wait_seconds,
        f"connector {decision.blocked_by} budget spent",
        decision.blocked_by or "budget",
    )


def _as_message(row: ClaimedRow) -> EmailMessage:
    """A detached ledger row holding what :class:`RecipientResult` reads."""
    return EmailMessage(
        id=row.id,
        recipient=row.recipient,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        resend_email_id=row.resend_email_id,
    )
