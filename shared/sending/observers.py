"""What the send pipeline tells the world about itself: metrics, and the dispatches it needs later.

Both are protocols with do-nothing defaults, so the pipeline runs anywhere (tests, the seed's
connector API in an upstream app); the worker plugs in its Prometheus metrics and a scheduler that
publishes ``pilot.dispatch`` through the broker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from shared.rate_limit import ConnectorLimits, RateLimiter


class SendMetrics(Protocol):
    """Counters and gauges of sending (the worker's are Prometheus instruments)."""

    def count_results(self, statuses: Iterable[str]) -> None:
        """Recipients answered, by outcome."""

    def count_response(self, status: int | None, error_name: str | None = None) -> None:
        """One answer from Resend (``status`` None: no answer)."""

    def count_deferrals(self, reason: str, rows: int = 1) -> None:
        """Rows that must wait, by reason (``hour``, ``requests``, ``connector_blocked``...)."""

    def count_units(self, rows: int) -> None:
        """One request went out carrying ``rows`` emails."""

    def observe_sent(self, priority: str, seconds: Iterable[float]) -> None:
        """Emails of class ``priority`` accepted by Resend, each ``seconds`` after it was recorded."""

    def sample_buckets(self, limiter: RateLimiter, connector_id: object, limits: ConnectorLimits) -> None:
        """Now and then, the connector's budget as gauges."""


class NoMetrics:
    """Metrics nobody reads."""

    def count_results(self, statuses: Iterable[str]) -> None:
        """Nothing."""

    def count_response(self, status: int | None, error_name: str | None = None) -> None:
        """Nothing."""

    def count_deferrals(self, reason: str, rows: int = 1) -> None:
        """Nothing."""

    def count_units(self, rows: int) -> None:
        """Nothing."""

    def observe_sent(self, priority: str, seconds: Iterable[float]) -> None:
        """Nothing."""

    def sample_buckets(self, limiter: RateLimiter, connector_id: object, limits: ConnectorLimits) -> None:
        """Nothing."""


class DispatchScheduler(Protocol):
    """Runs an API key's dispatch again later (the worker: a ``pilot.dispatch`` task with a countdown)."""

    def schedule(self, key_hash: str, delay_s: float) -> None:
        """Dispatch the queue of ``key_hash`` in ``delay_s`` seconds (once, however often asked)."""


class NoScheduler:
    """Schedules nothing: beat's sweep finds what waits (for tests and one-off processes)."""

    def schedule(self, key_hash: str, delay_s: float) -> None:
        """Nothing."""
