"""Dispatch an API key's queue: whoever gets the key's request token sends its oldest ready rows.

A run of :class:`Dispatcher` takes the token, claims a unit, decides each row by its own rules,
commits the unit before its request, sends it and records the answer, while tokens allow. A unit
whose outcome is unknown is sent again only as itself. The loop step by step: docs/architecture.md,
"The send path".
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from pydantic import SecretStr
from sqlalchemy.orm import Session

from shared import connector_store as store
from shared.backoff import compute_backoff
from shared.errors import (
    PayloadInvalid,
    RateLimitBackendUnavailable,
    ResendError,
    ResendIdempotencyMismatch,
)
from shared.models import SENDABLE_STATUSES, Connector, ConnectorStatus, MessageStatus, Priority
from shared.rate_limit import Decision, api_key_hash
from shared.reputation.guard import HOLD_WAIT_S
from shared.resend_client import BatchSendResult, SendResult
from shared.resend_schemas import MAX_BATCH_SIZE, CheckedRequest
from shared.sending import attachments, budgets, paused_rate, queue, units
from shared.sending.connectors import ConnectorView, view_of
from shared.sending.context import SendContext
from shared.sending.outcomes import RecipientResult, ResultStatus
from shared.sending.pacing import take_request_token
from shared.sending.queue import AloneRow, Answer, QueuedRow, RowChange
from shared.sending.retry_policy import (
    PAUSED_CONNECTOR_WAIT_S,
    ActionKind,
    action_for,
    attempts_exhausted,
    is_short_wait,
)
from shared.sending.suppression_check import describe

logger = logging.getLogger(__name__)

#: A unit in flight longer than this is looked at: if its dispatcher is gone (its lock is free), it
#: is sent again. A live dispatcher holds the lock however long its request takes.
ORPHANED_AFTER_S = 5.0
#: Units one run sends at most; then a scheduled run goes on (a worker slot is not held for long).
MAX_UNITS_PER_RUN = 10
#: Resend keeps idempotency keys 24 hours: a unit first sent longer ago than this is not sent again
#: (it could be sent twice); its rows need an operator.
IDEMPOTENCY_WINDOW = timedelta(hours=23)
#: Wait when Redis (the buckets) cannot be reached: fail closed, the rows wait in PostgreSQL.
BACKEND_DOWN_WAIT_S = 30.0
#: Wait before a unit whose recipient is being suppressed (or sent another email) is tried again.
RECIPIENT_BUSY_WAIT_S = 1.0
#: Actor of audit rows the dispatcher writes.
ACTOR = "worker"


@dataclass(frozen=True)
class Alone:
    """What the alone lane came to: the email's answer; or none (it goes through the queue), with
    whether the request token taken for it is handed on (``token_held``)."""

    result: RecipientResult | None = None
    token_held: bool = False


@dataclass
class _Plan:
    """What one claim came to: the unit to send (if any) and every claimed row's new state."""

    key: str
    now: datetime
    members: list[QueuedRow] = field(default_factory=list)
    #: The members still waiting for an answer (a unit sent again may hold rows answered since).
    open_ids: set[uuid.UUID] = field(default_factory=set)
    unit: str | None = None
    api_key: SecretStr | None = None
    retry: bool = False
    changes: list[RowChange] = field(default_factory=list)
    results: dict[uuid.UUID, RecipientResult] = field(default_factory=dict)
    #: Claimed rows left for a later unit (busy recipients, emails that must go alone, a full unit).
    more: bool = False
    #: Rows that moved to another API key's queue, by key.
    moved: dict[str | None, list[uuid.UUID]] = field(default_factory=lambda: defaultdict(list))
    #: Seconds until rows made to wait here are due (each short one gets a scheduled dispatch).
    waits: list[float] = field(default_factory=list)
    #: Nothing to send now, but a unit is in flight (and its dispatcher may be gone).
    idle: bool = False

    def decide(self, row: QueuedRow, change: RowChange, *, reason: str | None = None) -> None:
        """Give ``row`` its new state, and its answer."""
        self.changes.append(change)
        self.results[row.id] = RecipientResult.answer(
            row.recipient,
            change.status,
            reason=reason or change.error,
            message_id=row.id,
            next_attempt_at=change.next_attempt_at,
        )

    def wait(self, row: QueuedRow, seconds: float, reason: str, *, until: datetime | None = None) -> None:
        """``row`` waits (``deferred``) ``seconds``, or until ``until``."""
        due = until or self.now + timedelta(seconds=seconds)
        self.decide(row, RowChange(row.id, MessageStatus.DEFERRED, next_attempt_at=due, error=reason))
        self.waits.append((due - self.now).total_seconds())


class Dispatcher:
    """Sends the queues of API keys with one process's collaborators (:class:`SendContext`)."""

    def __init__(self, ctx: SendContext) -> None:
        self.ctx = ctx

    def run(
        self,
        key: str,
        *,
        max_units: int = MAX_UNITS_PER_RUN,
        patience_s: float = 0.0,
        token_held: bool = False,
    ) -> dict[uuid.UUID, RecipientResult]:
        """Send units of the queue of API key ``key`` while its request tokens allow.

        ``patience_s``: waits for the next token are slept while they fit in it (a caller waiting
        for its answer), instead of being left to a scheduled dispatch. ``token_held``: the caller
        took the first unit's token already (a single email that could not go alone).
        Returns the answer of every row this run decided (sent, failed, waiting...), by row id.
        """
        decided: dict[uuid.UUID, RecipientResult] = {}
        patience = patience_s
        with self.ctx.held_autocommit() as conn:
            for _ in range(max_units):
                if not token_held:
                    try:
                        token, patience = self._take_token(key, patience)
                    except RateLimitBackendUnavailable as exc:
                        # Fail closed: the rows wait in PostgreSQL; beat's sweep dispatches them again.
                        logger.warning("dispatch of API key %s stopped: %s", key, exc)
                        return decided
                    if not token.granted:
                        self.ctx.scheduler.schedule(key, token.wait_seconds)
                        return decided
                token_held = False
                plan = self._plan(conn, key)
                if plan is None:
                    return decided
                if plan.idle:
                    # A unit may be in flight with its dispatcher gone: look again once it could be.
                    self.ctx.scheduler.schedule(key, ORPHANED_AFTER_S + 1)
                    return decided
                self._after_planning(conn, plan)
                if plan.members:
                    self._send(conn, plan)
                self._count(plan)
                decided.update(plan.results)
                if not plan.more:
                    return decided
            self.ctx.scheduler.schedule(key, 0.0)
        return decided

    def _take_token(self, key: str, patience: float) -> tuple[Decision, float]:
        """The key's next request token, sleeping waits that fit in ``patience`` (what is left of it)."""
        token = take_request_token(self.ctx.limiter, key, self.ctx.sleep)
        while not token.granted and token.wait_seconds <= patience:
            patience -= token.wait_seconds
            self.ctx.sleep(token.wait_seconds)
            token = take_request_token(self.ctx.limiter, key, self.ctx.sleep)
        return token, patience

    def _count(self, plan: _Plan) -> None:
        self.ctx.metrics.count_results(
            result.status for result in plan.results.values() if result.status != ResultStatus.PENDING
        )

    # The alone lane -------------------------------------------------------------------------------

    def send_alone(self, row: AloneRow, view: ConnectorView) -> Alone:
        """Send a single email at once when nothing waits in its key's queue, as its own unit.

        The request token is taken first (a busy key refuses it: the email joins the queue without a
        read of PostgreSQL); then one read checks the email may skip the queue (see
        :func:`queue.claim_alone`), its connector's budget pays for it, and its row is written
        already in flight. Anything else (a waiting queue, a taken key, a suppressed recipient, a
        spent budget, a paused connector) sends it through the queue, which decides it as any row;
        the token taken here is then handed to that dispatch (``Alone.token_held``).
        """
        assert view.api_key is not None
        ctx, key = self.ctx, api_key_hash(view.api_key.get_secret_value())
        try:
            if ctx.spent_budgets.refusal(ctx.limiter, view.id, 1, view.limits, row.priority) is not None:
                return Alone()
            token = take_request_token(ctx.limiter, key, ctx.sleep)
        except RateLimitBackendUnavailable:
            return Alone()  # the queue's dispatch fails closed and says so
        if not token.granted:
            return Alone()
        with ctx.held_autocommit() as conn:
            now = ctx.clock()
            found = queue.claim_alone(conn, row, key, now=now)
            if not (self._may_go_alone(row, view, found) and queue.start_alone(conn, row, key)):
                if found.locked:
                    queue.unlock_all(conn)
                return Alone(token_held=True)
            plan = _Plan(key, now, unit=row.idempotency_key, api_key=view.api_key, open_ids={row.id})
            plan.members = [_in_flight(row, now, found.connector_status or "")]
            self._send(conn, plan)
        self._count(plan)
        return Alone(plan.results[row.id])

    def _may_go_alone(self, row: AloneRow, view: ConnectorView, found: queue.AloneClaim) -> bool:
        """Whether the claimed email may skip the queue; its connector's budget pays for it if so."""
        if not found.locked or found.key_taken or found.queue_waiting or found.suppressed or found.held:
            return False
        if found.connector_status not in SENDABLE_STATUSES:
            return False
        if row.task_id is not None and found.task_organization_id != row.organization_id:
            return False  # recording refuses it, naming the task
        try:
            return budgets.take_emails(self.ctx, view.id, view.limits, 1, row.priority).paid == 1
        except RateLimitBackendUnavailable:
            return False

    # Claiming and deciding ------------------------------------------------------------------------

    def _plan(self, conn: psycopg.Connection[Any], key: str) -> _Plan | None:
        """Claim and decide a unit, and commit it (before its request); None if nothing is ready."""
        now = self.ctx.clock()
        plan = _Plan(key, now)
        with conn.transaction():
            found = queue.claim(conn, key, limit=MAX_BATCH_SIZE, now=now, orphaned_after=ORPHANED_AFTER_S)
            due = list(dict.fromkeys(found.due_units))
            taken = bool(due) and self._plan_retry(conn, plan, due)
            if not taken:
                rows = found.rows
                if found.due_units:  # every due unit is held by a live dispatcher: the queue goes on
                    rows = queue.claim_ready(conn, key, limit=MAX_BATCH_SIZE, now=now)
                if rows:
                    self._plan_new(conn, plan, rows)
                elif found.in_flight or found.due_units:
                    plan.idle = True
                    return plan
                else:
                    return None
            queue.write_attempt(conn, plan.changes, unit=plan.unit)
            for new_key, ids in plan.moved.items():
                queue.rekey(conn, ids, new_key)
        return plan

    def _plan_new(
        self, conn: psycopg.Connection[Any], plan: _Plan, claimed: list[tuple[uuid.UUID, bool]]
    ) -> None:
        free = [message_id for message_id, locked in claimed if locked]
        rows = queue.read_claimed(conn, free, now=plan.now)
        # A row that went out before goes again only in its own unit (legacy rows waiting with one).
        earlier = [row for row in rows if row.attempt_key is not None]
        for row in earlier:
            plan.decide(row, RowChange(row.id, MessageStatus.SENDING, next_attempt_at=plan.now))
        candidates, left = units.form([row for row in rows if row.attempt_key is None])
        plan.more = bool(left) or bool(earlier) or len(free) < len(claimed) or len(claimed) == MAX_BATCH_SIZE
        if len(free) < len(claimed):
            self.ctx.metrics.count_deferrals("recipient_busy", len(claimed) - len(free))
        paid: list[QueuedRow] = []
        for connector_id, group in _by_connector(candidates):
            paid += self._paid_rows(conn, plan, connector_id, group)
        if paid:
            plan.members = units.in_unit_order(paid)
            plan.unit = units.unit_key(plan.members)
            plan.open_ids = {row.id for row in paid}
            for row in paid:
                plan.decide(row, RowChange(row.id, MessageStatus.SENDING, attempt=1))

    def _paid_rows(
        self, conn: psycopg.Connection[Any], plan: _Plan, connector_id: uuid.UUID, rows: list[QueuedRow]
    ) -> list[QueuedRow]:
        """The rows of one connector that go in the unit; the others are decided here."""
        view, blocked = self._connector(connector_id, rows[0].connector_status)
        if blocked is not None or view is None or view.api_key is None:
            self.ctx.metrics.count_deferrals("connector_blocked", len(rows))
            for row in rows:
                plan.wait(row, PAUSED_CONNECTOR_WAIT_S, blocked or "connector unavailable")
            return []
        key = api_key_hash(view.api_key.get_secret_value())
        if key != plan.key:
            plan.moved[key] += [row.id for row in rows]
            return []
        payable = []
        for row in rows:
            if attempts_exhausted(row.attempts):
                reason = f"gave up after {row.attempts} attempts: {row.last_error}"
                plan.decide(row, RowChange(row.id, MessageStatus.FAILED, error=reason))
            elif row.suppressed is not None:
                reason = describe(*row.suppressed)
                plan.decide(row, RowChange(row.id, MessageStatus.SUPPRESSED, error=reason))
            elif row.held is not None:
                self.ctx.metrics.count_deferrals("reputation", 1)
                plan.wait(row, HOLD_WAIT_S, row.held)
            else:
                payable.append(row)
        payable = self._within_paused_rate(plan, payable)
        plan.api_key = view.api_key
        paid: list[QueuedRow] = []
        for priority in queue.CLASS_ORDER:  # transactional rows take their tokens first
            rows_of_class = [row for row in payable if row.priority is priority]
            if rows_of_class:
                paid += self._pay(conn, plan, view, rows_of_class, priority)
        self._give_back_paused_rate(payable, paid)
        return paid

    def _within_paused_rate(self, plan: _Plan, rows: list[QueuedRow]) -> list[QueuedRow]:
        """The rows that may go on: a paused organization's transactional rows beyond its small rate
        wait (one connector's rows: one organization)."""
        paused = [row for row in rows if row.paused is not None]
        if not paused:
            return rows
        try:
            take = paused_rate.take(self.ctx, paused[0].organization_id, len(paused))
        except RateLimitBackendUnavailable as exc:
            self.ctx.metrics.count_deferrals("redis_unavailable", len(paused))
            for row in paused:
                plan.wait(row, BACKEND_DOWN_WAIT_S, str(exc))
            return [row for row in rows if row.paused is None]
        waiting = paused[take.paid :]
        if waiting:
            self.ctx.metrics.count_deferrals("reputation_rate", len(waiting))
        for row, seconds in zip(waiting, take.waits, strict=True):
            plan.wait(row, seconds, take.reason)
        left_out = {row.id for row in waiting}
        return [row for row in rows if row.id not in left_out]

    def _give_back_paused_rate(self, passed: list[QueuedRow], paid: list[QueuedRow]) -> None:
        """The small rate's tokens of the paused rows the connector's budget then made wait go back:
        a row that does not leave does not spend the paused organization's rate."""
        paid_ids = {row.id for row in paid}
        unpaid = [row for row in passed if row.paused is not None and row.id not in paid_ids]
        if not unpaid:
            return
        try:
            paused_rate.give_back(self.ctx, unpaid[0].organization_id, len(unpaid))
        except RateLimitBackendUnavailable as exc:  # the tokens stay spent: the strict side
            logger.warning("paused rate tokens not given back: %s", exc)

    def _pay(
        self,
        conn: psycopg.Connection[Any],
        plan: _Plan,
        view: ConnectorView,
        rows: list[QueuedRow],
        priority: Priority,
    ) -> list[QueuedRow]:
        """The rows of one connector and class its budget pays for; the others are parked."""
        try:
            take = budgets.take_emails(self.ctx, view.id, view.limits, len(rows), priority)
        except RateLimitBackendUnavailable as exc:
            self.ctx.metrics.count_deferrals("redis_unavailable", len(rows))
            for row in rows:
                plan.wait(row, BACKEND_DOWN_WAIT_S, str(exc))
            return []
        waiting = rows[take.paid :]
        if waiting and take.wait is not None:
            self.ctx.metrics.count_deferrals(take.wait.kind, len(waiting))
            until = budgets.parked_until(
                self.ctx,
                conn,
                view.id,
                view.limits,
                count=len(waiting),
                wait=take.wait,
                now=plan.now,
                priority=priority,
            )
            for row in waiting:
                plan.wait(row, 0.0, take.wait.reason, until=until)
        return rows[: take.paid]

    def _plan_retry(self, conn: psycopg.Connection[Any], plan: _Plan, due_units: list[str]) -> bool:
        """Take the first due unit no other dispatcher holds and send it again whole (or decide why
        not); False when every one is held."""
        for unit in due_units:
            claimed = queue.claim_unit(conn, unit)
            if claimed is None:
                continue
            rows = queue.read_claimed(conn, [message_id for message_id, _ in claimed], now=plan.now)
            open_rows = [row for row in rows if row.status == MessageStatus.SENDING]
            if not open_rows:
                continue
            plan.retry = plan.more = True
            if not all(locked for _, locked in claimed):
                self.ctx.metrics.count_deferrals("recipient_busy", len(open_rows))
                later = plan.now + timedelta(seconds=RECIPIENT_BUSY_WAIT_S)
                for row in open_rows:
                    plan.decide(row, RowChange(row.id, MessageStatus.SENDING, next_attempt_at=later))
                plan.waits.append(RECIPIENT_BUSY_WAIT_S)
                return True
            self._decide_retry(plan, unit, rows, open_rows)
            return True
        return False

    def _decide_retry(
        self, plan: _Plan, unit: str, rows: list[QueuedRow], open_rows: list[QueuedRow]
    ) -> None:
        members = units.in_unit_order(rows)
        view, blocked = self._connector(open_rows[0].connector_id, open_rows[0].connector_status)
        reason = self._retry_refusal(plan, unit, members, open_rows, view)
        if reason is not None:
            for row in open_rows:
                plan.decide(row, RowChange(row.id, MessageStatus.FAILED, error=reason))
            return
        if blocked is not None or view is None or view.api_key is None:
            # The outcome is still unknown: the unit keeps its key and waits (no new attempt).
            later = plan.now + timedelta(seconds=PAUSED_CONNECTOR_WAIT_S)
            for row in open_rows:
                plan.decide(row, RowChange(row.id, MessageStatus.SENDING, next_attempt_at=later))
            return
        suppressed = members[0].suppressed if len(members) == 1 else None
        if suppressed is not None:
            # Alone, a suppressed recipient is left out safely: no other email shares its key.
            row = members[0]
            plan.decide(row, RowChange(row.id, MessageStatus.SUPPRESSED, error=describe(*suppressed)))
            return
        plan.members, plan.unit, plan.api_key = members, unit, view.api_key
        plan.open_ids = {row.id for row in open_rows}
        for row in open_rows:
            plan.decide(row, RowChange(row.id, MessageStatus.SENDING, attempt=1))

    def _retry_refusal(
        self,
        plan: _Plan,
        unit: str,
        members: list[QueuedRow],
        open_rows: list[QueuedRow],
        view: ConnectorView | None,
    ) -> str | None:
        """Why a due unit may not be sent again (its rows fail), or None."""
        if units.unit_key(members) != unit:
            return f"needs attention: unit {unit} cannot be rebuilt whole (a member is gone); not sent again"
        if any(row.created_at <= plan.now - IDEMPOTENCY_WINDOW for row in open_rows):
            return needs_attention_reason(open_rows[0].id, open_rows[0].last_error)
        key = view.api_key if view is not None else None
        if key is not None and api_key_hash(key.get_secret_value()) != plan.key:
            return "needs attention: the connector's API key changed while the outcome was unknown"
        exhausted = [row for row in open_rows if attempts_exhausted(row.attempts)]
        if exhausted:
            return f"gave up after {exhausted[0].attempts} attempts: {exhausted[0].last_error}"
        return None

    def _connector(
        self, connector_id: uuid.UUID, live_status: str
    ) -> tuple[ConnectorView | None, str | None]:
        """The connector's view (cached), and why it cannot send now (its live status first)."""
        if live_status not in SENDABLE_STATUSES:
            self.ctx.connectors.forget(connector_id)
            return None, f"connector is {live_status}"
        view = self.view(connector_id)
        if view is None:
            return None, "connector unavailable"
        return view, view.blocked

    def view(self, connector_id: uuid.UUID) -> ConnectorView | None:
        """The connector as sending needs it, cached a few seconds (None: no such connector)."""
        return self.ctx.connectors.get(connector_id, lambda: self._load_view(connector_id))

    def _load_view(self, connector_id: uuid.UUID) -> ConnectorView | None:
        with Session(self.ctx.engine) as session:
            connector = session.get(Connector, connector_id)
            if connector is None:
                return None
            return view_of(connector, self.ctx.keyring, self.ctx.settings.resend_api_key)

    def _after_planning(self, conn: psycopg.Connection[Any], plan: _Plan) -> None:
        """Schedule what the plan left waiting for soon; release the locks of a plan that sends nothing."""
        for new_key in plan.moved:
            if new_key is not None:
                self.ctx.scheduler.schedule(new_key, 0.0)
        soon = [seconds for seconds in plan.waits if is_short_wait(seconds)]
        if soon:
            self.ctx.scheduler.schedule(plan.key, min(soon))
        if not plan.members:
            queue.unlock_all(conn)

    # Sending and recording --------------------------------------------------------------------------

    def _send(self, conn: psycopg.Connection[Any], plan: _Plan) -> None:
        assert plan.api_key is not None and plan.unit is not None
        client = self.ctx.resend_client(plan.api_key)
        try:
            # The stored bodies were checked against Resend's model when they were rendered; their
            # attachments' bytes are put back here, the same text on every attempt.
            requests = [
                CheckedRequest(body) for body in attachments.expand(conn, [r.request for r in plan.members])
            ]
            if len(requests) == 1:
                answer: SendResult | BatchSendResult = client.send_email(
                    requests[0], idempotency_key=plan.unit
                )
            else:
                answer = client.send_batch(requests, idempotency_key=plan.unit)
        except (ResendError, PayloadInvalid) as exc:
            answers = self._failure(plan, exc)
        else:
            answers = self._success(plan, answer)
        self.ctx.metrics.count_units(len(plan.members))
        at = self.ctx.clock()
        emails = defaultdict(int, {row.connector_id: 0 for row in plan.members})
        latencies: dict[Priority, list[float]] = defaultdict(list)
        for item in answers:
            if item.email_id is not None:
                row = self._row(plan, item.id)
                emails[row.connector_id] += 1
                latencies[row.priority].append(max(0.0, (at - row.created_at).total_seconds()))
        for priority, seconds in latencies.items():
            self.ctx.metrics.observe_sent(priority, seconds)
        queue.record_answer(conn, answers, at=at, usage=dict(emails))
        for item in answers:
            row = self._row(plan, item.id)
            plan.results[row.id] = RecipientResult.answer(
                row.recipient,
                item.status,
                reason=item.error,
                resend_id=item.email_id,
                message_id=row.id,
                next_attempt_at=item.next_attempt_at,
            )

    def _success(self, plan: _Plan, answer: SendResult | BatchSendResult) -> list[Answer]:
        assert plan.api_key is not None
        self.ctx.metrics.count_response(200)
        self.ctx.learn_rate(plan.api_key, answer.rate_limit.limit)
        if isinstance(answer, SendResult):
            return [Answer(plan.members[0].id, MessageStatus.SENT, email_id=answer.email_id)]
        answers = []
        for item in answer.items:
            row = plan.members[item.index]
            if row.id not in plan.open_ids:
                continue
            if item.email_id is not None:
                answers.append(Answer(row.id, MessageStatus.SENT, email_id=item.email_id))
            else:
                answers.append(Answer(row.id, MessageStatus.FAILED, error=f"refused by Resend: {item.error}"))
        return answers

    def _failure(self, plan: _Plan, exc: ResendError | PayloadInvalid) -> list[Answer]:
        open_rows = [row for row in plan.members if row.id in plan.open_ids]
        reason = str(exc)
        if isinstance(exc, PayloadInvalid):  # a stored body the client refuses: never sent again
            return [Answer(row.id, MessageStatus.FAILED, error=reason) for row in open_rows]
        assert plan.api_key is not None
        self.ctx.metrics.count_response(exc.status_code, exc.error_name)
        limit = exc.rate_limit.get("ratelimit-limit")
        self.ctx.learn_rate(plan.api_key, int(limit) if limit and limit.isdigit() else None)
        attempts = max(row.attempts for row in open_rows) + 1
        action = action_for(exc, attempts=attempts, rand=self.ctx.rand)
        if action.kind is ActionKind.RETRY:
            return self._retry_later(plan, open_rows, reason)
        if action.kind in (ActionKind.WAIT, ActionKind.DEFER):
            return self._wait(plan, open_rows, exc, action.delay)
        if isinstance(exc, ResendIdempotencyMismatch):
            logger.error("idempotency key reused with another payload (a bug): %s", reason)
        if action.kind is ActionKind.FAIL_AUTH:
            self._disable_connectors({row.connector_id for row in open_rows}, reason)
        return [Answer(row.id, MessageStatus.FAILED, error=reason) for row in open_rows]

    def _retry_later(self, plan: _Plan, rows: list[QueuedRow], reason: str) -> list[Answer]:
        """Outcome unknown: the same unit under the same key later, or failed once attempts are spent."""
        answers = []
        delays = []
        for row in rows:
            attempts = row.attempts + 1
            if attempts_exhausted(attempts):
                answers.append(
                    Answer(row.id, MessageStatus.FAILED, error=f"gave up after {attempts} attempts: {reason}")
                )
            else:
                delay = compute_backoff(attempts, rand=self.ctx.rand)
                delays.append(delay)
                due = plan.now + timedelta(seconds=delay)
                answers.append(Answer(row.id, MessageStatus.SENDING, error=reason, next_attempt_at=due))
        if delays:
            self.ctx.scheduler.schedule(plan.key, max(delays))
        return answers

    def _wait(self, plan: _Plan, rows: list[QueuedRow], exc: ResendError, delay: float) -> list[Answer]:
        """Resend refused the request before doing anything (429): nothing was sent, no attempt used."""
        self.ctx.metrics.count_deferrals(exc.error_name or "rate_limited", len(rows))
        self._cool_down(plan, delay)
        due = plan.now + timedelta(seconds=delay)
        if is_short_wait(delay):
            self.ctx.scheduler.schedule(plan.key, delay)
        reason = str(exc)
        if plan.retry:  # an earlier unit keeps its key: its first attempt's outcome is still unknown
            return [
                Answer(row.id, MessageStatus.SENDING, error=reason, next_attempt_at=due, refund=True)
                for row in rows
            ]
        return [
            Answer(
                row.id,
                MessageStatus.DEFERRED,
                error=reason,
                next_attempt_at=due,
                refund=True,
                forget_unit=True,
            )
            for row in rows
        ]

    def _cool_down(self, plan: _Plan, seconds: float) -> None:
        """Every worker waits for this key (Resend's 429 is per team, not per process)."""
        if seconds <= 0 or plan.api_key is None:
            return
        try:
            self.ctx.limiter.start_cooldown(plan.api_key.get_secret_value(), seconds)
        except RateLimitBackendUnavailable:
            logger.warning("could not record a Resend cooldown: Redis unavailable")

    def _disable_connectors(self, connector_ids: Iterable[uuid.UUID], reason: str) -> None:
        """Resend refused the key: its connectors are marked ``error`` until a status check passes."""
        with Session(self.ctx.engine) as session, session.begin():
            for connector_id in sorted(connector_ids):
                connector = store.get_connector(session, connector_id, for_update=True)
                store.set_last_error(connector, reason)
                store.set_status(session, connector, ConnectorStatus.ERROR, actor=ACTOR, reason=reason)
                self.ctx.connectors.forget(connector_id)

    @staticmethod
    def _row(plan: _Plan, message_id: uuid.UUID) -> QueuedRow:
        return next(row for row in plan.members if row.id == message_id)


def needs_attention_reason(message_id: uuid.UUID, last_error: str | None) -> str:
    """Why a row was failed without knowing whether Resend sent it."""
    return (
        "needs attention: outcome unknown and Resend's 24 h idempotency window has passed, so it was "
        f"not sent again; look for tag message_id={message_id} in Resend (last error: {last_error})"
    )


def _in_flight(row: AloneRow, now: datetime, connector_status: str) -> QueuedRow:
    """The alone lane's row as the dispatcher sends it (read before its attempt, as a claim reads)."""
    return QueuedRow(
        row.id,
        row.connector_id,
        row.organization_id,
        row.task_id,
        row.idempotency_key,
        row.recipient,
        row.request,
        attempts=0,
        attempt_key=None,
        last_error=None,
        status=MessageStatus.SENDING,
        created_at=now,
        connector_status=connector_status,
        suppressed=None,
        priority=row.priority,
    )


def _by_connector(rows: Sequence[QueuedRow]) -> list[tuple[uuid.UUID, list[QueuedRow]]]:
    groups: dict[uuid.UUID, list[QueuedRow]] = defaultdict(list)
    for row in rows:
        groups[row.connector_id].append(row)
    return list(groups.items())
