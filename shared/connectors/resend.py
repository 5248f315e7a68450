"""The Resend connector: the seed's ``send_email``/``send_batch`` for direct use, on the one send path.

In-process callers get what ``pilot.send_email`` gets (ledger rows, suppression, budgets, request
rate, idempotency keys, recorded outcomes). The call waits a little for its key's request tokens and
answers each email as it stands then (README.md, "Sending from an upstream application"); Resend's
answers never raise.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.addresses import check_address
from shared.connector_config import SECRET_FIELD
from shared.connectors import factory
from shared.connectors.base import (
    BaseConnector,
    BatchResult,
    ConnectorResult,
    EmailConnector,
    UsageLimiter,
)
from shared.connectors.message import SeedEmail, seed_email
from shared.errors import ConnectorError, PilotError, ResendAuthError, ResendError
from shared.models import SENDABLE_STATUSES, Connector, ConnectorStatus, Task
from shared.rate_limit import RateLimiter
from shared.resend_client import KeyCheck, ResendClient
from shared.resend_http import ResendHTTP
from shared.sending import pipeline
from shared.sending.cancellation import CancelOutcome
from shared.sending.context import SendContext
from shared.sending.outcomes import RecipientResult, ResultStatus, SendOutcome
from shared.settings import Settings

#: Resend API keys start with this prefix.
API_KEY_PREFIX = "re_"
#: Seconds a direct send waits at most for its API key's next request tokens before answering.
DIRECT_SEND_PATIENCE_S = 5.0


class ResendConnector(BaseConnector, EmailConnector):
    """One Resend account (API key), with the connector's sender default and send budgets."""

    type_name = "resend"

    def __init__(
        self,
        *,
        api_key: SecretStr | None,
        http: ResendHTTP,
        sending: Callable[[], SendContext] | None = None,
        patience_s: float = DIRECT_SEND_PATIENCE_S,
        **base: Any,
    ) -> None:
        super().__init__(**base)
        self._api_key = api_key
        self._client = None if not api_key else ResendClient(http=http, api_key=api_key)
        #: The send path's collaborators (database, buckets, HTTP), from the factory.
        self._sending = sending
        self._patience = patience_s

    @classmethod
    def from_record(cls, row: Connector, context: factory.ConnectorContext) -> Self:
        """Build from a ``connectors`` row: the stored key, else ``RESEND_API_KEY``."""
        api_key = factory.stored_api_key(row, context) or context.settings.resend_api_key
        arguments = factory.base_arguments(row, context)
        return cls(api_key=api_key, http=context.http, sending=context.sending, **arguments)

    @property
    def default_from(self) -> str | None:
        """The sender used when ``send_email`` gets no ``from_``."""
        value = self.config.get("default_from")
        return value if isinstance(value, str) else None

    # Checks ---------------------------------------------------------------------------------------

    def validate_config(self, config: Mapping[str, Any] | None = None) -> list[str]:
        """Every problem at once: API key, sender address, limits, secret-looking config fields."""
        config = self.config if config is None else config
        return [*_key_problems(self._api_key), *config_problems(config)]

    def test_connection(self) -> ConnectorResult:
        """``GET /domains``: success for a full-access or sending-only key; records the check."""
        if self._client is None:
            return self._checked(ConnectorResult(False, error=NO_KEY))
        try:
            access = self._client.check_key()
        except ResendError as exc:
            self.record_usage(emails=0, requests=1)
            error, details = self._record_failure(exc)
            return self._checked(ConnectorResult(False, error=error, metadata=details))
        self.record_usage(emails=0, requests=1)
        return self._checked(ConnectorResult(True, metadata={"key_access": KeyCheck(access).value}))

    # Sending --------------------------------------------------------------------------------------

    def send_email(
        self,
        to: str | Sequence[str],
        subject: str,
        body: str,
        from_: str | None = None,
        reply_to: str | Sequence[str] | None = None,
        task_id: str | uuid.UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> ConnectorResult:
        """Send one email (one Resend email per mailbox of ``to``, ``cc`` and ``bcc``); ``extra`` takes
        ``text``, ``cc``, ``bcc``, ``headers``, ``tags``, ``idempotency_key``, ``scheduled_at`` and
        ``attachments``."""
        fields: dict[str, Any] = {"to": to, "subject": subject, "body": body, "from_": from_}
        fields |= {"reply_to": reply_to, "task_id": task_id, "metadata": metadata, **extra}
        [result] = self._send([fields])
        return result

    def cancel(
        self,
        *,
        idempotency_key: str | None = None,
        task_id: uuid.UUID | None = None,
        message_ids: Sequence[uuid.UUID | str] | None = None,
    ) -> CancelOutcome:
        """Cancel this connector's sends that have not left (scheduled, queued, deferred), named one
        way; each row's answer (``cancelled``, ``already_sent``, ``in_flight``...)."""
        if self._sending is None:
            raise ConnectorError(
                "this connector was not loaded from the database: use create_resend_connector"
            )
        kwargs: dict[str, Any] = {"connector_id": str(self.connector_id)}
        if idempotency_key is not None:
            kwargs["idempotency_key"] = idempotency_key
        if task_id is not None:
            kwargs["task_id"] = str(task_id)
        if message_ids:
            kwargs["message_ids"] = [str(value) for value in message_ids]
        return pipeline.cancel(self._sending(), kwargs, actor=f"connector:{self.connector_id}")

    def send_batch(self, emails: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Send ``emails``: they leave with their API key's queue, up to 100 a request. An invalid
        email is refused alone; the others go."""
        return BatchResult.of(self._send(emails))

    def _send(self, emails: Sequence[Mapping[str, Any]]) -> list[ConnectorResult]:
        refusal = self._refusal()
        if refusal is not None or self._sending is None:
            reason = refusal or "this connector was not loaded from the database: use create_resend_connector"
            return [_refused(reason, fields) for fields in emails]
        ctx = self._sending()
        organization_id = self._organization_id(ctx)
        prepared: list[tuple[SeedEmail | None, pipeline.Submission]] = []
        for fields in emails:
            try:
                task_row = _task_row(ctx, fields.get("task_id"), organization_id)
                email = seed_email(fields, connector_id=self.connector_id, task_row=task_row)
            except PilotError as exc:
                prepared.append(
                    (
                        None,
                        pipeline.Submission(
                            outcome=SendOutcome([RecipientResult("", ResultStatus.FAILED, str(exc))])
                        ),
                    )
                )
                continue
            # A lone email may go alone (at once when its key's queue is empty); a batch's join the queue.
            submission = pipeline.submit_email(
                ctx, email.payload, task_ref=email.task_ref, alone_ok=len(emails) == 1
            )
            prepared.append((email, submission))
        outcomes = pipeline.finish(ctx, [submission for _, submission in prepared], patience_s=self._patience)
        self._refresh_status(ctx)
        return [
            _connector_result(outcome, email, fields)
            for (email, _), outcome, fields in zip(prepared, outcomes, emails, strict=True)
        ]

    def _refusal(self) -> str | None:
        """Why this connector may not send at all now (its status, its key, its buckets)."""
        if self.status not in SENDABLE_STATUSES:
            return f"connector {self.connector_id} is {self.status}"
        if self._client is None:
            return NO_KEY
        if not isinstance(self._limiter, RateLimiter):
            return "no rate limiter: the connector's budgets cannot be checked"
        return None

    def _organization_id(self, ctx: SendContext) -> uuid.UUID | None:
        with Session(ctx.engine) as session:
            return session.scalar(select(Connector.organization_id).where(Connector.id == self.connector_id))

    def _refresh_status(self, ctx: SendContext) -> None:
        """A send may have found the key refused (the connector is then ``error``): read it again."""
        with Session(ctx.engine) as session:
            current = session.get(Connector, self.connector_id)
            if current is not None:
                self.status, self.last_error = current.status, current.last_error

    # Failures -------------------------------------------------------------------------------------

    def _record_failure(self, exc: ResendError) -> tuple[str, dict[str, Any]]:
        """Remember Resend's answer as ``last_error`` (an unusable key also sets status ``error``).

        Returns the scrubbed message and the details a result carries.
        """
        error = self._scrub(str(exc))
        unusable = isinstance(exc, ResendAuthError)
        self.last_error = error
        if unusable:
            self.status = ConnectorStatus.ERROR
        self._recorder.record_error(self.connector_id, error, unusable=unusable)
        return error, {
            "error_type": type(exc).__name__,
            "error_name": exc.error_name,
            "status_code": exc.status_code,
            "retry_after": exc.retry_after,
        }

    def _checked(self, result: ConnectorResult) -> ConnectorResult:
        self._recorder.record_check(self.connector_id, error=result.error)
        if result.error is not None:
            self.last_error = result.error
        return result

    def _scrub(self, text: str) -> str:
        secret = self._api_key.get_secret_value() if self._api_key else ""
        return text.replace(secret, "[api key]") if secret else text


NO_KEY = "no Resend API key: none stored for the connector and RESEND_API_KEY is not set"


def config_problems(config: Mapping[str, Any]) -> list[str]:
    """Problems with a Resend connector's config: sender, budgets, secrets where they do not belong."""
    problems: list[str] = []
    sender = config.get("default_from")
    if not sender:
        problems.append("default_from: not set (the sender address, e.g. 'Acme <news@acme.com>')")
    else:
        try:
            check_address(str(sender))
        except ValueError as exc:
            problems.append(f"default_from: {exc}")
    per_hour = _positive(config, "rate_limit_per_hour", problems)
    per_day = _positive(config, "rate_limit_per_day", problems)
    if per_hour is not None and per_day is not None and per_day < per_hour:
        problems.append("rate_limit_per_day: must not be below rate_limit_per_hour")
    problems += [
        f"{name}: looks like a secret; store API keys with set-key"
        for name in config
        if SECRET_FIELD.search(name)
    ]
    return problems


def _positive(config: Mapping[str, Any], name: str, problems: list[str]) -> int | None:
    value = config.get(name)
    if value is None:
        return None  # the defaults of ConnectorConfig apply
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        problems.append(f"{name}: must be a positive whole number")
        return None
    return value


def _key_problems(api_key: SecretStr | None) -> list[str]:
    if not api_key:
        return ["api key: " + NO_KEY]
    if not api_key.get_secret_value().startswith(API_KEY_PREFIX):
        return [f"api key: must start with {API_KEY_PREFIX!r}"]
    return []


def _caller_metadata(fields: Mapping[str, Any]) -> dict[str, Any]:
    metadata = fields.get("metadata")
    return {"metadata": dict(metadata)} if isinstance(metadata, Mapping) else {}


def _refused(reason: str, fields: Mapping[str, Any]) -> ConnectorResult:
    return ConnectorResult(False, error=reason, metadata=_caller_metadata(fields), status=ResultStatus.FAILED)


def _task_row(ctx: SendContext, task_id: Any, organization_id: uuid.UUID | None) -> uuid.UUID | None:
    """The ``tasks`` row of the organization that ``task_id`` names, if it names one."""
    try:
        candidate = uuid.UUID(str(task_id))
    except ValueError:
        return None
    with Session(ctx.engine) as session:
        owner = session.scalar(select(Task.organization_id).where(Task.id == candidate))
    return candidate if owner is not None and owner == organization_id else None


def _connector_result(
    outcome: SendOutcome, email: SeedEmail | None, fields: Mapping[str, Any]
) -> ConnectorResult:
    """One email's result from its recipients' results (one per mailbox)."""
    metadata = email.result_metadata() if email is not None else _caller_metadata(fields)
    results = outcome.results
    metadata["recipients"] = [result.as_dict() for result in results]
    waiting = [result for result in results if result.status != ResultStatus.SENT]
    if not waiting:
        ids = {result.resend_id for result in results}
        message_id = ids.pop() if len(ids) == 1 else None
        return ConnectorResult(True, message_id=message_id, metadata=metadata, status=ResultStatus.SENT)
    first = waiting[0]
    if first.next_attempt_at is not None:
        metadata["next_attempt_at"] = first.next_attempt_at
    return ConnectorResult(False, error=first.reason, metadata=metadata, status=first.status)


def create_resend_connector(
    connector_id: uuid.UUID | str,
    *,
    session_factory: sessionmaker[Session] | None = None,
    settings: Settings | None = None,
    http: ResendHTTP | None = None,
    limiter: UsageLimiter | None = None,
    include_inactive: bool = False,
) -> ResendConnector:
    """Load connector ``connector_id`` (type ``resend``) from the database, ready to send.

    Refuses an unknown connector (:class:`ConnectorNotFound`) and a paused or failing one
    (:class:`ConnectorPaused`) unless ``include_inactive`` (the status check must test those).
    Defaults come from :func:`shared.settings.get_settings`, so ``create_resend_connector(id)`` works.
    """
    connector = factory.load_connector(
        connector_id,
        types={ResendConnector.type_name: ResendConnector},
        session_factory=session_factory,
        settings=settings,
        http=http,
        limiter=limiter,
        include_inactive=include_inactive,
    )
    assert isinstance(connector, ResendConnector)
    return connector
