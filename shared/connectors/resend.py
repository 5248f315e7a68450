"""The Resend connector: the seed's ``send_email``/``send_batch`` convenience layer over ResendClient.

For direct use (tools, upstream apps calling in-process). The worker uses :class:`ResendClient`
with its own ledger instead. Every send takes the connector's hour and day tokens first, carries an
``Idempotency-Key`` (given, or derived from the task id and the exact body), the ``X-Task-ID`` header
and ``task_id`` tag, and reports failures as unsuccessful results with the reason (never raises for
Resend's answers). Caller metadata goes back in the result and, where it fits Resend's tag rules, as
tags.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Self, TypeVar

from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from shared.addresses import check_address
from shared.connector_config import SECRET_FIELD
from shared.connectors import factory
from shared.connectors.base import (
    SENDABLE_STATUSES,
    BaseConnector,
    BatchResult,
    ConnectorResult,
    EmailConnector,
    UsageLimiter,
)
from shared.connectors.message import EmailFields, build_request
from shared.errors import (
    PilotError,
    ResendAuthError,
    ResendError,
    ResendQuotaExceeded,
    ResendRateLimited,
)
from shared.models import Connector
from shared.resend_client import BatchSendResult, KeyCheck, ResendClient, encode_body
from shared.resend_http import ResendHTTP
from shared.resend_schemas import MAX_BATCH_SIZE
from shared.settings import Settings

#: Resend API keys start with this prefix (resend-api.md §1).
API_KEY_PREFIX = "re_"
_T = TypeVar("_T")
_SAFE_TASK_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def chunked(items: Sequence[_T], size: int = MAX_BATCH_SIZE) -> Iterator[list[_T]]:
    """Consecutive slices of at most ``size`` items."""
    if size < 1:
        raise ValueError("size must be at least 1")
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class ResendConnector(BaseConnector, EmailConnector):
    """One Resend account (API key), with the connector's sender default and send budgets."""

    type_name = "resend"

    def __init__(self, *, api_key: SecretStr | None, http: ResendHTTP, **base: Any) -> None:
        super().__init__(**base)
        self._api_key = api_key
        self._client = None if not api_key else ResendClient(http=http, api_key=api_key)

    @classmethod
    def from_record(cls, row: Connector, context: factory.ConnectorContext) -> Self:
        """Build from a ``connectors`` row: the stored key, else ``RESEND_API_KEY``."""
        api_key = factory.stored_api_key(row, context) or context.settings.resend_api_key
        return cls(api_key=api_key, http=context.http, **factory.base_arguments(row, context))

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
        """Send one email; ``extra`` takes ``text``, ``cc``, ``bcc``, ``headers``, ``attachments``,
        ``scheduled_at`` and ``idempotency_key``."""
        fields: dict[str, Any] = {"to": to, "subject": subject, "body": body, "from_": from_}
        fields |= {"reply_to": reply_to, "task_id": task_id, "metadata": metadata, **extra}
        try:
            email = build_request(fields, default_from=self.default_from)
        except PilotError as exc:
            return ConnectorResult(False, error=str(exc), metadata=_caller_metadata(fields))
        refusal = self._refusal(1)
        if refusal is not None:
            return _failed(refusal, email)
        key = email.idempotency_key or derive_idempotency_key(
            self.connector_id, email.task_id, email.request.to_wire()
        )
        return self._send_one(email, key)

    def send_batch(self, emails: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Send ``emails`` in calls of at most 100; invalid items fail alone, the rest go."""
        results: list[ConnectorResult | None] = [None] * len(emails)
        valid: list[tuple[int, EmailFields]] = []
        for index, fields in enumerate(emails):
            try:
                valid.append((index, build_request(fields, default_from=self.default_from, batch=True)))
            except PilotError as exc:
                results[index] = ConnectorResult(False, error=str(exc), metadata=_caller_metadata(fields))
        stop: str | None = None
        for chunk in chunked(valid):
            chunk_results = [_failed(stop, email) for _, email in chunk] if stop else self._send_chunk(chunk)
            for (index, _), result in zip(chunk, chunk_results, strict=True):
                results[index] = result
            stop = stop or _stop_reason(chunk_results)
        return BatchResult.of([result for result in results if result is not None])

    def _send_one(self, email: EmailFields, key: str) -> ConnectorResult:
        assert self._client is not None  # _refusal checked it
        try:
            sent = self._client.send_email(email.request, idempotency_key=key)
        except ResendError as exc:
            self.record_usage(emails=0, requests=1)
            error, details = self._record_failure(exc)
            return ConnectorResult(False, error=error, metadata={**email.result_metadata(key), **details})
        self.record_usage(emails=1, requests=1)
        metadata = {**email.result_metadata(key), "rate_limit": sent.rate_limit.__dict__}
        return ConnectorResult(True, message_id=sent.email_id, metadata=metadata)

    def _send_chunk(self, chunk: list[tuple[int, EmailFields]]) -> list[ConnectorResult]:
        emails = [email for _, email in chunk]
        refusal = self._refusal(len(emails))
        if refusal is not None:
            return [_failed(refusal, email) for email in emails]
        assert self._client is not None
        key = derive_idempotency_key(self.connector_id, None, [email.request.to_wire() for email in emails])
        try:
            answer = self._client.send_batch([email.request for email in emails], idempotency_key=key)
        except ResendError as exc:
            self.record_usage(emails=0, requests=1)
            error, details = self._record_failure(exc)
            return [
                ConnectorResult(False, error=error, metadata={**email.result_metadata(key), **details})
                for email in emails
            ]
        return self._batch_results(answer, emails, key)

    def _batch_results(
        self, answer: BatchSendResult, emails: list[EmailFields], key: str
    ) -> list[ConnectorResult]:
        results = []
        for item, email in zip(answer.items, emails, strict=True):
            metadata = {**email.result_metadata(key), "batch_index": item.index}
            if item.email_id is None:
                results.append(ConnectorResult(False, error=self._scrub(item.error or ""), metadata=metadata))
            else:
                results.append(ConnectorResult(True, message_id=item.email_id, metadata=metadata))
        self.record_usage(emails=sum(result.success for result in results), requests=1)
        return results

    def _refusal(self, n: int) -> str | None:
        """Why ``n`` emails may not go now (status, key, budget), taking the tokens when they may."""
        if self.status not in SENDABLE_STATUSES:
            return f"connector {self.connector_id} is {self.status}"
        if self._client is None:
            return NO_KEY
        try:
            decision = self._require_limiter().acquire_emails(self.connector_id, n, self.limits)
        except PilotError as exc:
            return str(exc)
        if not decision.granted:
            return f"{decision.blocked_by} budget spent; retry in {decision.wait_seconds:.0f}s"
        return None

    # Failures -------------------------------------------------------------------------------------

    def _record_failure(self, exc: ResendError) -> tuple[str, dict[str, Any]]:
        """Remember Resend's answer as ``last_error`` (an unusable key also sets status ``error``).

        Returns the scrubbed message and the details a result carries.
        """
        error = self._scrub(str(exc))
        unusable = isinstance(exc, ResendAuthError)
        self.last_error = error
        if unusable:
            self.status = "error"
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


def derive_idempotency_key(connector_id: uuid.UUID, task_id: str | None, body: Any) -> str:
    """``<connector>/<task or direct>/<sha256 of the canonical wire body>``.

    A repeat of the same send reuses it; any change in content or recipients makes a new one
    (Resend keeps keys 24 h). A task id that is long or not header-safe is replaced by its hash.
    """
    digest = hashlib.sha256(encode_body(body)).hexdigest()
    task = task_id or "direct"
    if not _SAFE_TASK_ID.fullmatch(task):
        task = hashlib.sha256(task.encode()).hexdigest()[:32]
    return f"{connector_id}/{task}/{digest[:40]}"


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


def _failed(reason: str, email: EmailFields) -> ConnectorResult:
    return ConnectorResult(False, error=reason, metadata=email.result_metadata(None))


def _caller_metadata(fields: Mapping[str, Any]) -> dict[str, Any]:
    metadata = fields.get("metadata")
    return {"metadata": dict(metadata)} if isinstance(metadata, Mapping) else {}


def _stop_reason(results: list[ConnectorResult]) -> str | None:
    """After an unusable key, a spent quota or a rate limit, later chunks are not attempted."""
    for result in results:
        if result.metadata.get("error_type") in _STOPPING_ERRORS:
            return f"not attempted after: {result.error}"
    return None


_STOPPING_ERRORS = frozenset(
    cls.__name__ for cls in (ResendAuthError, ResendQuotaExceeded, ResendRateLimited)
)


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
