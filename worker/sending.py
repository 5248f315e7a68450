"""The send pipeline: ledger rows → claim → suppression → tokens → Resend → record. No Celery here.

:func:`send_email` and :func:`send_batch` take a task's kwargs and return a :class:`SendOutcome`;
``outcome.retry_in`` asks the caller (the Celery task) to run the same kwargs again after that
many seconds. Every wait longer than :data:`~worker.retry_policy.MAX_COUNTDOWN_S` is stored in the
row instead (``deferred`` + ``next_attempt_at``) and released by beat.

The rows of a task are cut into units of up to 100 at fixed boundaries (so a retry forms the same
units, and a unit the same key): a unit of one row is ``POST /emails`` with the row's key, a larger
one ``POST /emails/batch`` with a key derived from its members' keys. Steps for each unit:
rows over the attempt cap fail; suppressed recipients are answered without a token or a call; the
API-key request bucket, then the connector's hour and day buckets are asked; the attempt is
committed (status ``sending``); Resend is called with the stored body and the deterministic key;
the answer is recorded with the connector's usage and the task's counts.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import connector_store as store
from shared.errors import (
    NotFound,
    PayloadInvalid,
    RateLimitBackendUnavailable,
    ResendError,
    ResendIdempotencyMismatch,
)
from shared.models import Connector, EmailMessage, Task
from shared.rate_limit import ConnectorLimits, Decision
from shared.resend_client import BatchSendResult, SendResult
from worker import fast_send, ledger, metrics, parking
from worker.batching import chunks
from worker.connector_cache import credentials, limits_of
from worker.context import SendContext
from worker.fast_send import BACKEND_DOWN_WAIT_S
from worker.invalid_payloads import record_invalid
from worker.pacing import take_request_token
from worker.payloads import (
    ResumePayload,
    SendBatchPayload,
    SendEmailPayload,
    parse_send_batch,
    parse_send_email,
)
from worker.rendering import RenderedMessage, chunk_key
from worker.results import RecipientResult, SendOutcome
from worker.retry_policy import (
    PAUSED_CONNECTOR_WAIT_S,
    ActionKind,
    action_for,
    attempts_exhausted,
    compute_backoff,
    is_short_wait,
)
from worker.send_preparation import Prepared, prepare_rows
from worker.suppression_check import suppressed_reasons

logger = logging.getLogger(__name__)

#: Countdown before a task tries again the rows whose recipient was busy.
RECIPIENT_BUSY_RETRY_S = 1.0
#: Actor of audit rows the worker writes.
ACTOR = "worker"


def send_email(
    ctx: SendContext, kwargs: Mapping[str, Any], *, task_ref: str, args: Sequence[Any] = ()
) -> SendOutcome:
    """Run ``pilot.send_email``: one ``POST /emails``, or ``/emails/batch`` for several mailboxes.

    A new email to one recipient takes :mod:`worker.fast_send`; anything else (or anything that
    path declines before taking a token) runs the general path below.
    """
    if args:
        return _refuse_positional(ctx, args, kwargs, task_ref=task_ref)
    try:
        payload = parse_send_email(kwargs)
    except PayloadInvalid as exc:
        return record_invalid(ctx, kwargs, str(exc), task_ref=task_ref)
    if isinstance(payload, SendEmailPayload):
        handoff = functools.partial(_handoff, ctx)
        outcome = fast_send.send_one(ctx, payload, task_ref=task_ref, handoff=handoff)
        if outcome is not None:
            return outcome
    return _run(ctx, kwargs, payload, task_ref=task_ref)


def send_batch(
    ctx: SendContext, kwargs: Mapping[str, Any], *, task_ref: str, args: Sequence[Any] = ()
) -> SendOutcome:
    """Run ``pilot.send_batch``: chunks of up to 100 recipients per ``POST /emails/batch``."""
    if args:
        return _refuse_positional(ctx, args, kwargs, task_ref=task_ref)
    try:
        payload = parse_send_batch(kwargs)
    except PayloadInvalid as exc:
        return record_invalid(ctx, kwargs, str(exc), task_ref=task_ref)
    return _run(ctx, kwargs, payload, task_ref=task_ref)


def _refuse_positional(
    ctx: SendContext, args: Sequence[Any], kwargs: Mapping[str, Any], *, task_ref: str
) -> SendOutcome:
    """A payload sent as positional ``args`` is refused, and recorded against what it names."""
    reason = "args: positional arguments are not accepted; send the payload as keyword arguments (kwargs)"
    payload = args[0] if len(args) == 1 and not kwargs and isinstance(args[0], Mapping) else kwargs
    return record_invalid(ctx, payload, reason, task_ref=task_ref)


def _run(
    ctx: SendContext,
    kwargs: Mapping[str, Any],
    payload: SendEmailPayload | ResumePayload | SendBatchPayload,
    *,
    task_ref: str,
) -> SendOutcome:
    with ledger_session(ctx) as session:
        try:
            prepared = _prepare(session, payload, task_ref=task_ref)
        except PayloadInvalid as exc:
            session.rollback()
            return record_invalid(ctx, kwargs, str(exc), task_ref=task_ref)
        # No commit yet: the new rows are committed with the first attempt (one round trip less).
        outcome = _Sender(ctx, session, prepared.connector, rendered=prepared.messages).run(prepared.ids)
        outcome.results = prepared.results(outcome.results)
        return outcome


@contextmanager
def ledger_session(ctx: SendContext) -> Iterator[Session]:
    """A session on one connection held for the whole send, so its advisory locks span commits.

    The normal path releases the locks in its last transaction; after an error they are released
    here (or with the connection, if it is broken).
    """
    with ctx.held_connection() as connection:
        session = Session(bind=connection, expire_on_commit=False, autoflush=False)
        try:
            yield session
        except BaseException:
            session.rollback()
            ledger.unlock_all(session)
            session.commit()
            raise
        finally:
            session.close()


def _handoff(
    ctx: SendContext, connector_id: uuid.UUID, message_id: uuid.UUID, api_key: SecretStr, step: fast_send.Step
) -> SendOutcome:
    """Apply a fast-path step to its claimed row with the general path's rules, and commit.

    The fast path still holds the row's lock (on its own connection) and releases it after this.
    """
    with ledger_session(ctx) as session:
        connector = store.get_connector(session, connector_id)
        rows = ledger.load_messages(session, [message_id], connector_id=connector_id)
        sender = _Sender(ctx, session, connector)
        unit = _Unit(sender, rows, api_key, limits_of(connector))
        if isinstance(step, fast_send.Wait):
            sender.wait(rows, step.seconds, step.reason, kind=step.kind, refund=False, defer=step.defer)
            sender._finish(rows, emails=0, requests=0)
        else:
            unit.record_failure(rows, step.error)
            sender._finish(rows, emails=0, requests=1)
        session.commit()
        return SendOutcome([RecipientResult.of(row) for row in rows], retry_in=sender.retry_in)


def unit_key(rows: Sequence[EmailMessage]) -> str:
    """The idempotency key of a unit: a single row's own, else its batch's (from its members' keys)."""
    if len(rows) == 1:
        return rows[0].idempotency_key
    return chunk_key([row.idempotency_key for row in rows])


def prepare(
    session: Session, payload: SendEmailPayload | SendBatchPayload, *, task_ref: str
) -> tuple[Connector, list[uuid.UUID]]:
    """Check the routing fields and write the ledger rows; the connector and the row ids in order.

    Raises :class:`PayloadInvalid` for an unknown connector, organization mismatch, unknown task,
    or an ``idempotency_key`` already used for other content (nothing of this payload is written).
    """
    prepared = _prepare(session, payload, task_ref=task_ref)
    if prepared.answered:
        raise PayloadInvalid("; ".join(str(result.reason) for result in prepared.answered))
    return prepared.connector, prepared.ids


def _prepare(
    session: Session, payload: SendEmailPayload | ResumePayload | SendBatchPayload, *, task_ref: str
) -> Prepared:
    """:func:`prepare`, with the messages it rendered and the answers known without sending."""
    connector = _connector(session, payload)
    if isinstance(payload, ResumePayload):
        rows = ledger.load_messages(session, payload.message_ids, connector_id=connector.id)
        return Prepared(connector, ids=[row.id for row in rows])
    prepared = prepare_rows(session, payload, connector, task_ref=task_ref)
    if payload.task_id is not None:
        ledger.refresh_task_counts(session, payload.task_id)
    return prepared


def _connector(session: Session, payload: SendEmailPayload | ResumePayload | SendBatchPayload) -> Connector:
    try:
        connector = store.get_connector(session, payload.connector_id)
    except NotFound:
        raise PayloadInvalid(f"connector_id: no connector {payload.connector_id}") from None
    if payload.organization_id is not None and payload.organization_id != connector.organization_id:
        raise PayloadInvalid("organization_id: the connector belongs to another organization")
    if payload.task_id is not None:
        owner = session.scalar(select(Task.organization_id).where(Task.id == payload.task_id))
        if owner is None:
            raise PayloadInvalid(f"task_id: no task {payload.task_id}")
        if owner != connector.organization_id:
            raise PayloadInvalid("task_id: the task belongs to another organization")
    return connector


class _Sender:
    """Sends the open rows of one task through one connector (one session, one connection)."""

    def __init__(
        self,
        ctx: SendContext,
        session: Session,
        connector: Connector,
        *,
        rendered: Sequence[RenderedMessage] = (),
    ) -> None:
        self.ctx = ctx
        self.session = session
        self.connector = connector
        self.retry_in: float | None = None
        self.tasks: set[uuid.UUID] = set()
        #: Requests this task rendered (and checked), by row id: sent as they are when the row holds
        #: the same request, instead of the row's copy being validated again.
        self._checked = {message.id: message.request for message in rendered}

    def wire_request(self, row: EmailMessage) -> Mapping[str, Any]:
        """The row's request, as rendered by this task if it holds the same one (already checked)."""
        checked = self._checked.get(row.id)
        return checked if checked is not None and checked == row.request else row.request

    def run(self, ids: Sequence[uuid.UUID]) -> SendOutcome:
        # Recipient locks first: the suppression check below then reads after any suppression that
        # held one, and a suppression arriving later waits for this send to be over. A busy
        # recipient (being suppressed, or sent another email) is tried again shortly.
        free = ledger.try_lock_recipients(self.session, ids)
        if len(free) < len(set(ids)):
            self.retry_soon(RECIPIENT_BUSY_RETRY_S)
        locked = ledger.try_lock(self.session, [i for i in ids if i in free])
        # read after taking the locks
        rows = ledger.load_messages(self.session, ids, connector_id=self.connector.id, refresh=True)
        moment = self.ctx.clock()
        due = {row.id for row in rows if row.id in locked and ledger.is_due(row, moment)}
        if due:
            self._send_due(rows, due)
        ledger.unlock_all(self.session)
        self.session.commit()
        results = [self._result(row, locked) for row in rows]
        return SendOutcome(results=results, retry_in=self.retry_in)

    def _send_due(self, rows: list[EmailMessage], due: set[uuid.UUID]) -> None:
        api_key, blocked = self._credentials()
        if blocked or api_key is None:
            until = ledger.defer_until(PAUSED_CONNECTOR_WAIT_S, self.ctx.clock())
            for row in rows:
                if row.id in due:
                    ledger.mark_waiting(row, blocked or "no API key", until=until, refund=False)
            metrics.count_deferrals("connector_blocked", len(due))
            self._finish([row for row in rows if row.id in due], emails=0, requests=0)
            return
        limits = limits_of(self.connector)
        # A row that went out before may have reached Resend: it goes again only in the unit of its
        # first attempt (same members, same key, same body), whichever task holds it now. Rows never
        # sent are cut into units at fixed boundaries, so a retry of the task forms the same units.
        attempts: dict[str, list[EmailMessage]] = {}
        for row in rows:
            if row.id in due and row.attempt_key is not None:
                attempts.setdefault(row.attempt_key, []).append(row)
        for key, members in attempts.items():
            whole = self._whole_attempt(key, members)
            if whole:
                _Unit(self, whole, api_key, limits, exact=True).send()
        for unit in chunks(rows):
            members = [row for row in unit if row.id in due and row.attempt_key is None]
            if members:
                _Unit(self, members, api_key, limits).send()

    def _whole_attempt(self, key: str, members: list[EmailMessage]) -> list[EmailMessage] | None:
        """Every open row of attempt ``key``, all locked by this sender; None while another has some.

        A batch's rows may reach a later task split up (the sweep and the reconcile publish rows in
        groups of their own): the members this task was not given are locked and added.
        """
        mine = {row.id for row in members}
        everyone = ledger.load_attempt(self.session, key, connector_id=self.connector.id)
        missing = [row.id for row in everyone if row.id not in mine]
        if missing:
            if ledger.try_lock_recipients(self.session, missing) != set(missing):
                self.retry_soon(RECIPIENT_BUSY_RETRY_S)
                return None
            if ledger.try_lock(self.session, missing) != set(missing):
                return None  # another sender holds some: it sends the unit, or a later task will
            # read again under the locks
            everyone = ledger.load_attempt(self.session, key, connector_id=self.connector.id)
        return everyone

    def _credentials(self) -> tuple[SecretStr | None, str | None]:
        """The API key, or why the connector cannot send now."""
        return credentials(self.connector, self.ctx.keyring, self.ctx.settings.resend_api_key)

    def wait(
        self,
        rows: Sequence[EmailMessage],
        seconds: float,
        reason: str,
        *,
        kind: str,
        refund: bool,
        defer: bool = False,
    ) -> None:
        """Not now: a short wait is a task retry, a long one (or ``defer``) a deferral in the rows.

        ``kind`` names the reason for the metrics (``hour``, ``requests``, a Resend error name...).
        """
        metrics.count_deferrals(kind, len(rows))
        moment = self.ctx.clock()
        short = is_short_wait(seconds) and not defer
        if not short and kind in parking.BUDGET_KINDS and rows:
            seconds = parking.parking_seconds(
                self.session,
                self.ctx.limiter,
                self.connector.id,
                limits_of(self.connector),
                count=len(rows),
                seconds=seconds,
                moment=moment,
            )
        until = None if short else ledger.defer_until(seconds, moment)
        for row in rows:
            ledger.mark_waiting(row, reason, until=until, refund=refund)
        if short and rows:
            self.retry_soon(seconds)

    def retry_soon(self, seconds: float) -> None:
        """Ask for the task's retry after at least ``seconds`` (the longest need wins: never sooner)."""
        self.retry_in = seconds if self.retry_in is None else max(self.retry_in, seconds)

    def _finish(self, rows: Sequence[EmailMessage], *, emails: int, requests: int) -> None:
        if emails or requests:
            store.record_usage(self.session, self.connector.id, emails=emails, requests=requests)
        for task_id in sorted({row.task_id for row in rows if row.task_id is not None}):
            ledger.refresh_task_counts(self.session, task_id)
        # committed by the next unit's attempt or by run()'s last transaction (one round trip less)
        self.session.flush()

    def _result(self, row: EmailMessage, locked: set[uuid.UUID]) -> RecipientResult:
        result = RecipientResult.of(row)
        if row.id not in locked and result.status == "pending":
            return RecipientResult(
                row.recipient, "pending", "being sent by another worker", None, str(row.id)
            )
        return result


class _Unit:
    """One Resend call's worth of rows: one email, or one chunk of a batch."""

    def __init__(
        self,
        sender: _Sender,
        rows: list[EmailMessage],
        api_key: SecretStr,
        limits: ConnectorLimits,
        *,
        exact: bool = False,
    ) -> None:
        self.s = sender
        self.rows = rows
        self.api_key = api_key
        self.limits = limits
        #: The unit of an earlier attempt: sent whole or not at all (never split or regrouped).
        self.exact = exact

    def send(self) -> None:
        rows = self._open_rows()
        rows = self._take_tokens(rows) if rows else []
        if not rows:
            self.s._finish(self.rows, emails=0, requests=0)
            return
        if len(rows) > 1:
            rows = sorted(rows, key=lambda row: row.idempotency_key)  # one order, one key, one body
        key = unit_key(rows)
        if self.exact and key != rows[0].attempt_key:
            logger.warning("attempt %s cannot be rebuilt whole; sending under %s", rows[0].attempt_key, key)
        ledger.mark_sending(self.s.session, rows, key)
        self.s.session.commit()  # the attempt counts even if this process dies during the call
        try:
            answer = self._call(rows)
        except (ResendError, PayloadInvalid) as exc:
            self.record_failure(rows, exc)
            sent = 0
        else:
            metrics.count_response(200)
            sent = self._on_success(rows, answer)
        self.s._finish(self.rows, emails=sent, requests=1)

    def record_failure(self, rows: list[EmailMessage], exc: ResendError | PayloadInvalid) -> None:
        """An attempt that was refused or whose outcome is unknown."""
        if isinstance(exc, ResendError):
            metrics.count_response(exc.status_code, exc.error_name)
            self._on_error(rows, exc)
            return
        for row in rows:  # a stored body Resend's model refuses: never retried
            ledger.mark_final(row, "failed", str(exc))

    def _open_rows(self) -> list[EmailMessage]:
        """Fail rows out of attempts; answer suppressed recipients; the rows that may still go."""
        session, connector = self.s.session, self.s.connector
        reasons: dict[str, str] = {}
        # An earlier batch is re-sent whole even if a member was suppressed since: dropping it would
        # change the batch's key and body, and Resend would send every other member a second time.
        if not (self.exact and len(self.rows) > 1):
            reasons = suppressed_reasons(
                session, connector.organization_id, [row.recipient for row in self.rows]
            )
        open_rows = []
        for row in self.rows:
            if attempts_exhausted(row.attempts):
                ledger.mark_final(row, "failed", f"gave up after {row.attempts} attempts: {row.last_error}")
            elif row.recipient.lower() in reasons:
                ledger.mark_final(row, "suppressed", reasons[row.recipient.lower()])
            else:
                open_rows.append(row)
        return open_rows

    def _take_tokens(self, rows: list[EmailMessage]) -> list[EmailMessage]:
        """One request token, then one email token per row not yet paid for; rows without tokens wait.

        A row still ``sending`` took its email token at an attempt whose outcome is unknown (a
        timeout, a dropped connection, a worker killed mid-call). Its retry is the same email under
        the same key, which Resend counts once: it takes no second token (and the budget that a lost
        Redis is rebuilt from already counts it, so charging it again would park a sent email).
        """
        limiter, spent = self.s.ctx.limiter, self.s.ctx.spent_budgets
        key = self.api_key.get_secret_value()
        unpaid = [row for row in rows if row.status != "sending"]
        # Nothing can go without email tokens: n of them for a whole earlier unit, else any one.
        needs_budget = bool(unpaid) and (len(unpaid) == len(rows) or self.exact)
        # Tokens asked for at once: no more than either bucket could ever hold.
        wanted = min(len(unpaid), self.limits.per_hour, self.limits.per_day)
        n = 0
        try:
            if needs_budget:
                peek = wanted if self.exact else 1
                refused = spent.refusal(limiter, self.s.connector.id, peek, self.limits)
                if refused is not None:
                    self._wait_for_budget(rows, refused)
                    return []
            decision = take_request_token(limiter, key, self.s.ctx.sleep)
            if not decision.granted:
                self.s.wait(
                    rows,
                    decision.wait_seconds,
                    f"waiting for the API key's {decision.blocked_by}",
                    kind=decision.blocked_by or "requests",
                    refund=False,
                )
                return []
            if unpaid:
                n = wanted
                decision = limiter.acquire_emails(self.s.connector.id, n, self.limits)
                if not decision.granted:
                    spent.saw_spent(self.s.connector.id)
                    n = 0 if self.exact else self._take_what_is_left(n)
                if n == 0 and needs_budget:
                    self._wait_for_budget(rows, decision)
                    return []
                metrics.sample_buckets(limiter, self.s.connector.id, self.limits)
        except RateLimitBackendUnavailable as exc:
            # The broker is most likely the same Redis: park the rows in PostgreSQL, not in a retry.
            down = BACKEND_DOWN_WAIT_S
            self.s.wait(rows, down, str(exc), kind="redis_unavailable", refund=False, defer=True)
            return []
        left_out = unpaid[n:]
        if left_out:
            spent.saw_spent(self.s.connector.id)
            # Wait until the buckets hold tokens for every row left, not just one: a spent budget
            # parks the rest in PostgreSQL instead of dripping them out through short retries.
            wait = self._wait_for_tokens(len(left_out))
            self.s.wait(left_out, wait, "connector budget spent", kind="budget", refund=False)
        waiting = {row.id for row in left_out}
        return [row for row in rows if row.id not in waiting]

    def _wait_for_budget(self, rows: list[EmailMessage], refusal: Decision) -> None:
        step = fast_send.budget_wait(refusal)
        self.s.wait(rows, step.seconds, step.reason, kind=step.kind, refund=False)

    def _take_what_is_left(self, wanted: int) -> int:
        """Take as many email tokens as both buckets still hold (a batch sends what it may)."""
        limiter, cid = self.s.ctx.limiter, self.s.connector.id
        left = min(limiter.get_usage_stats(cid, period, self.limits).remaining for period in ("hour", "day"))
        n = min(wanted - 1, left)
        if n > 0 and limiter.acquire_emails(cid, n, self.limits).granted:
            return n
        return 0

    def _wait_for_tokens(self, count: int) -> float:
        """Seconds until both the hour and the day bucket hold ``count`` more email tokens."""
        limiter, cid = self.s.ctx.limiter, self.s.connector.id
        waits = [0.0]
        periods: tuple[tuple[Literal["hour", "day"], float], ...] = (("hour", 3600.0), ("day", 86400.0))
        for period, seconds in periods:
            stats = limiter.get_usage_stats(cid, period, self.limits)
            missing = min(count, stats.limit) - stats.remaining
            waits.append(max(0, missing) * seconds / stats.limit)
        return max(waits)

    def _call(self, rows: list[EmailMessage]) -> SendResult | BatchSendResult:
        client = self.s.ctx.resend_client(self.api_key)
        if len(rows) == 1:
            return client.send_email(self.s.wire_request(rows[0]), idempotency_key=rows[0].idempotency_key)
        return client.send_batch([self.s.wire_request(row) for row in rows], idempotency_key=unit_key(rows))

    def _on_success(self, rows: list[EmailMessage], answer: SendResult | BatchSendResult) -> int:
        moment = self.s.ctx.clock()
        self.s.ctx.learn_rate(self.api_key, answer.rate_limit.limit)
        if isinstance(answer, SendResult):
            ledger.mark_sent(rows[0], answer.email_id, moment)
            return 1
        sent = []
        for item in answer.items:
            row = rows[item.index]
            if item.email_id is not None:
                sent.append((row, item.email_id))
            else:
                ledger.mark_final(row, "failed", f"refused by Resend: {item.error}")
        ledger.mark_sent_many(self.s.session, sent, moment)
        return len(sent)

    def _on_error(self, rows: list[EmailMessage], exc: ResendError) -> None:
        limit = exc.rate_limit.get("ratelimit-limit")
        self.s.ctx.learn_rate(self.api_key, int(limit) if limit and limit.isdigit() else None)
        action = action_for(exc, attempts=max(row.attempts for row in rows), rand=self.s.ctx.rand)
        reason = str(exc)
        if action.kind is ActionKind.RETRY:
            self._retry_or_give_up(rows, reason)
        elif action.kind in (ActionKind.WAIT, ActionKind.DEFER):
            self._cool_down(action.delay)
            self.s.wait(rows, action.delay, reason, kind=exc.error_name or "rate_limited", refund=True)
        else:
            if isinstance(exc, ResendIdempotencyMismatch):
                logger.error("idempotency key reused with another payload (a bug): %s", reason)
            for row in rows:
                ledger.mark_final(row, "failed", reason)
            if action.kind is ActionKind.FAIL_AUTH:
                self._disable_connector(reason)

    def _retry_or_give_up(self, rows: list[EmailMessage], reason: str) -> None:
        """Outcome unknown: same key later, or fail once the attempts are spent."""
        for row in rows:
            if attempts_exhausted(row.attempts):
                ledger.mark_final(row, "failed", f"gave up after {row.attempts} attempts: {reason}")
            else:
                ledger.mark_unknown(row, reason)
                self.s.retry_soon(compute_backoff(row.attempts, rand=self.s.ctx.rand))

    def _cool_down(self, seconds: float) -> None:
        """Every worker waits for this key (Resend's 429 is per team, not per process)."""
        if seconds <= 0:
            return
        try:
            self.s.ctx.limiter.start_cooldown(self.api_key.get_secret_value(), seconds)
        except RateLimitBackendUnavailable:
            logger.warning("could not record a Resend cooldown: Redis unavailable")

    def _disable_connector(self, reason: str) -> None:
        connector = store.get_connector(self.s.session, self.s.connector.id, for_update=True)
        store.set_last_error(connector, reason)
        store.set_status(self.s.session, connector, "error", actor=ACTOR, reason=reason)
        self.s.connector = connector
        self.s.ctx.connectors.forget(connector.id)
