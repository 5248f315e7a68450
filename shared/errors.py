"""Domain errors. Every error the project raises on purpose derives from :class:`PilotError`.

Context travels in attributes, never secrets. The tree, and what the send path does with each
error: docs/architecture.md, "Errors and what the send path does".
"""

from __future__ import annotations

from collections.abc import Mapping


class PilotError(Exception):
    """Raised when Marketing Pilot refuses or fails an operation on purpose."""


class ConfigError(PilotError):
    """Raised when a setting is missing or malformed; the message names the variable."""


class PayloadInvalid(PilotError, ValueError):
    """Raised when input (a task payload, a request, a CLI argument) is invalid."""


class FieldsInvalid(PayloadInvalid):
    """Raised when named fields of an input are invalid; ``problems`` maps each field to its problem."""

    def __init__(self, subject: str, problems: Mapping[str, str]) -> None:
        described = "; ".join(f"{field}: {problem}" for field, problem in problems.items())
        super().__init__(f"{subject}: {described}")
        self.problems = dict(problems)


class ReputationPolicyInvalid(FieldsInvalid):
    """Raised when an organization's reputation thresholds are out of order or beyond operator limits."""


class NotFound(PilotError, LookupError):
    """Raised when a row that was asked for does not exist."""


class OrganizationNotFound(NotFound):
    """Raised when an organization id is unknown."""


class ConnectorNotFound(NotFound):
    """Raised when a connector id is unknown."""


class TaskNotFound(NotFound):
    """Raised when a task id is unknown."""


class AlreadyExists(PilotError):
    """Raised when a name that must be unique is taken (a connector's name in its organization)."""


class CryptoError(PilotError):
    """Raised when a credential cannot be encrypted or decrypted (wrong key, tampering, swap)."""


class ImportInterrupted(PilotError):
    """Raised when a bulk import stops part-way; ``stored`` entries were written before it stopped."""

    def __init__(self, message: str, *, stored: int) -> None:
        super().__init__(message)
        self.stored = stored


class ConnectorError(PilotError):
    """Raised when a connector cannot be used."""

    def __init__(self, message: str, *, connector_id: object = None) -> None:
        super().__init__(message)
        self.connector_id = connector_id


class ConnectorPaused(ConnectorError):
    """Raised when a paused or failing connector is asked to send."""


class ConnectorConfigInvalid(ConnectorError):
    """Raised when a connector's configuration has problems; ``problems`` lists them all."""

    def __init__(self, problems: list[str], *, connector_id: object = None) -> None:
        super().__init__("invalid connector config: " + "; ".join(problems), connector_id=connector_id)
        self.problems = problems


class RateLimitError(PilotError):
    """Raised when a rate-limit check cannot grant tokens."""


class RequestExceedsCapacity(RateLimitError, ValueError):
    """Raised when more tokens are asked for than a bucket can ever hold."""


class RateLimitBackendUnavailable(RateLimitError):
    """Raised when Redis cannot be reached; callers fail closed and send nothing."""


class ResendError(PilotError):
    """Raised for an unsuccessful exchange with Resend.

    ``status_code`` is None when no answer arrived. ``error_name`` and ``message`` are Resend's.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_name: str | None = None,
        retry_after: float | None = None,
        rate_limit: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error_name = error_name
        self.retry_after = retry_after
        self.rate_limit: dict[str, str] = dict(rate_limit or {})

    def __str__(self) -> str:
        if self.status_code is None:
            return self.message
        return f"{self.status_code} {self.error_name or 'error'}: {self.message}"


class ResendTransportError(ResendError):
    """Raised on a timeout or connection error: the outcome of the request is unknown."""


class ResendServerError(ResendError):
    """Raised on a 5xx answer: transient, retry with the same idempotency key."""


class ResendRateLimited(ResendError):
    """Raised on 429 ``rate_limit_exceeded``: wait ``retry_after`` seconds."""


class ResendQuotaExceeded(ResendError):
    """Raised on 429 ``daily_quota_exceeded`` or ``monthly_quota_exceeded``."""


class ResendIdempotencyInFlight(ResendError):
    """Raised on 409 ``concurrent_idempotent_requests``: retry later with the same key."""


class ResendIdempotencyMismatch(ResendError):
    """Raised on 409 ``invalid_idempotent_request``: the payload changed under one key."""


class ResendAuthError(ResendError):
    """Raised on 401/403 key errors: the API key is missing, invalid, restricted or suspended."""


class ResendRejected(ResendError):
    """Raised on any other 4xx: Resend refused the request and retrying will not help."""


class WebhookVerificationError(PilotError):
    """Raised when a webhook request fails signature or format checks; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BrokerUnavailable(PilotError, ConnectionError):
    """Raised when the Celery broker cannot be reached to publish a task (the message names its URL,
    password masked)."""


class TokenInvalid(PilotError):
    """Raised when an unsubscribe or resubscribe token is forged, tampered with, expired or sealed
    with a key no longer configured; the message never says which."""

    def __init__(self) -> None:
        super().__init__("invalid or expired link")


class DeadLetterNotPublished(PilotError, ConnectionError):
    """Raised when a refused broker message could not be dead-lettered, so it is not acknowledged.

    A ``ConnectionError``: Celery's consumer reconnects to the broker, and the message, still
    unacknowledged, is delivered again once the broker answers.
    """


class ErasureBlocked(PilotError):
    """Raised when a person cannot be erased yet: emails to them are in flight (their outcome unknown);
    ``in_flight`` says how many. Nothing was changed."""

    def __init__(self, message: str, *, in_flight: int) -> None:
        super().__init__(message)
        self.in_flight = in_flight
