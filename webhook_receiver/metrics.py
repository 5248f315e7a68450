"""The seam for request metrics (Prometheus arrives with issue 8): the app calls ``observe`` once per
request with the endpoint, status code and duration."""

from __future__ import annotations

from typing import Protocol


class ReceiverMetrics(Protocol):
    """Receives one observation per request."""

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """Record that ``endpoint`` answered ``status`` after ``seconds``."""


class NullMetrics:
    """Records nothing."""

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """Do nothing."""
