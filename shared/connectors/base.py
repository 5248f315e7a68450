"""What every connector offers, and the results they return (the seed's interface, typed).

A connector is built from its ``connectors`` row by :mod:`shared.connectors.registry`. Budgets are
delegated to the shared Redis token buckets (:class:`shared.rate_limit.RateLimiter`), usage and
failures to a :class:`~shared.connectors.recording.ConnectorRecorder` (the database in production).
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import ValidationError

from shared import models
from shared.connector_config import ConnectorConfig
from shared.connectors.recording import ConnectorRecorder, NullRecorder
from shared.errors import ConfigError, ConnectorConfigInvalid
from shared.rate_limit import ConnectorLimits, Decision, UsageStats
from shared.settings import describe_validation_error

if TYPE_CHECKING:
    from typing import Self

    from shared.connectors.factory import ConnectorContext
    from shared.models import Connector

Period = Literal["hour", "day"]
#: Statuses in which a connector may send (``rate_limited`` is decided by the buckets, not here).


@dataclass(frozen=True)
class ConnectorResult:
    """The outcome of one send (or check): ``message_id`` on success, ``error`` otherwise.

    ``metadata`` keeps what the caller passed with the message and what the provider said about it.
    A send's ``status`` says where its email stands: ``sent``, ``pending`` (it leaves with its API
    key's next request), ``deferred`` (waiting for a budget; ``metadata["next_attempt_at"]``),
    ``suppressed`` or ``failed``; a check has none.
    """

    success: bool
    message_id: str | None = None
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    status: str | None = None


@dataclass(frozen=True)
class BatchResult:
    """The outcome of a batch: ``total_sent`` emails handed in, split into ``successful`` and ``failed``.

    ``results`` holds one :class:`ConnectorResult` per email, in the order given.
    """

    total_sent: int
    successful: int
    failed: int
    results: list[ConnectorResult]

    @classmethod
    def of(cls, results: Sequence[ConnectorResult]) -> BatchResult:
        """Count ``results``."""
        successful = sum(1 for result in results if result.success)
        return cls(len(results), successful, len(results) - successful, list(results))


@dataclass(frozen=True)
class ConnectorStatus:
    """What ``get_status()`` reports; never a credential."""

    connector_id: str
    type: str
    name: str
    status: str
    can_send: bool
    last_error: str | None
    last_checked_at: datetime | None


class UsageLimiter(Protocol):
    """The part of :class:`shared.rate_limit.RateLimiter` a connector uses."""

    def acquire_emails(self, connector_id: str | uuid.UUID, n: int, limits: ConnectorLimits) -> Decision: ...

    def can_execute(self, connector_id: str | uuid.UUID, limits: ConnectorLimits, n: int = 1) -> bool: ...

    def get_usage_stats(
        self, connector_id: str | uuid.UUID, period: Period, limits: ConnectorLimits
    ) -> UsageStats: ...


class BaseConnector(ABC):
    """A configured connection to one provider account.

    Subclasses set ``type_name`` and implement :meth:`test_connection`, :meth:`validate_config` and
    :meth:`from_record` (see :mod:`shared.connectors.registry`).
    """

    type_name: ClassVar[str]

    def __init__(
        self,
        *,
        connector_id: uuid.UUID | str,
        config: Mapping[str, Any],
        name: str = "",
        status: str = models.ConnectorStatus.ACTIVE,
        limiter: UsageLimiter | None = None,
        recorder: ConnectorRecorder | None = None,
        last_error: str | None = None,
        last_checked_at: datetime | None = None,
    ) -> None:
        self.connector_id = uuid.UUID(str(connector_id))
        self.config: dict[str, Any] = dict(config)
        self.name = name
        self.status = status
        self.last_error = last_error
        self.last_checked_at = last_checked_at
        self._limiter = limiter
        self._recorder: ConnectorRecorder = recorder or NullRecorder()

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(id={str(self.connector_id)!r}, name={self.name!r}, status={self.status!r})"

    @classmethod
    @abstractmethod
    def from_record(cls, row: Connector, context: ConnectorContext) -> Self:
        """Build the connector from its ``connectors`` row (credentials decrypted here)."""

    @abstractmethod
    def test_connection(self) -> ConnectorResult:
        """Ask the provider whether the credentials work; never raises for a provider answer."""

    @abstractmethod
    def validate_config(self, config: Mapping[str, Any] | None = None) -> list[str]:
        """Every problem with ``config`` (default: this connector's) and credentials; empty if none."""

    def require_valid_config(self) -> None:
        """Raise :class:`ConnectorConfigInvalid` listing every problem, if there is any."""
        problems = self.validate_config()
        if problems:
            raise ConnectorConfigInvalid(problems, connector_id=self.connector_id)

    def get_status(self) -> ConnectorStatus:
        """Status, last error and last check; what an operator needs, without secrets."""
        return ConnectorStatus(
            connector_id=str(self.connector_id),
            type=self.type_name,
            name=self.name,
            status=self.status,
            can_send=self.status in models.SENDABLE_STATUSES,
            last_error=self.last_error,
            last_checked_at=self.last_checked_at,
        )

    @property
    def limits(self) -> ConnectorLimits:
        """The hour and day budgets from the config (defaults for a new connector)."""
        try:
            parsed = ConnectorConfig.model_validate(self.config)
        except ValidationError as exc:
            problems = [describe_validation_error(exc)]
            raise ConnectorConfigInvalid(problems, connector_id=self.connector_id) from None
        return parsed.limits()

    def can_execute(self, n: int = 1) -> bool:
        """Whether ``n`` emails may go now: the connector may send and both budgets have room."""
        return self.status in models.SENDABLE_STATUSES and self._require_limiter().can_execute(
            self.connector_id, self.limits, n
        )

    def get_usage_stats(self, period: Period) -> UsageStats:
        """``used``/``limit``/``remaining``/``resets_in`` of the ``"hour"`` or ``"day"`` budget."""
        return self._require_limiter().get_usage_stats(self.connector_id, period, self.limits)

    def record_usage(self, *, emails: int, requests: int) -> None:
        """Add to the connector's hourly usage history (``connector_usage``)."""
        if emails or requests:
            self._recorder.record_usage(self.connector_id, emails=emails, requests=requests)

    def _require_limiter(self) -> UsageLimiter:
        if self._limiter is None:
            # Fail closed: without the shared buckets nobody can say whether sending is allowed.
            raise ConfigError(f"connector {self.connector_id}: no rate limiter configured (REDIS_URL)")
        return self._limiter


class EmailConnector(ABC):
    """A connector that sends email."""

    @abstractmethod
    def send_email(
        self,
        to: str | Sequence[str],
        subject: str,
        body: str,
        from_: str | None = None,
        reply_to: str | Sequence[str] | None = None,
        task_id: str | uuid.UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ConnectorResult:
        """Send one email (``body`` is HTML); failures come back as an unsuccessful result."""

    @abstractmethod
    def send_batch(self, emails: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Send many emails; each mapping holds :meth:`send_email`'s arguments."""
