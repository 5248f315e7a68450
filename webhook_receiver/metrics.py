"""The receiver's Prometheus metrics, served at ``/metrics``.

The app calls :meth:`ReceiverMetrics.observe` once per webhook request. Under gunicorn each worker
counts into ``PROMETHEUS_MULTIPROC_DIR`` and :func:`exposition` sums them (``MultiProcessCollector``);
without it (tests, one process) each app counts in a registry of its own.
"""

from __future__ import annotations

import os
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

from shared.errors import ConfigError

#: The environment variable prometheus-client reads (at import) to count in shared files.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Outcomes of a verified request.
STORED = "stored"
DUPLICATE = "duplicate"
#: Rejection reasons: a short fixed vocabulary, never raw input (label values are series).
REJECT_REASONS = (
    "signature",
    "timestamp",
    "headers",
    "too_large",
    "content_type",
    "method",
    "malformed",
    "slow_body",
)
#: Latency buckets (seconds): a stored webhook takes milliseconds; Resend gives up after 15 s.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0)


class ReceiverMetrics(Protocol):
    """Receives one observation per webhook request."""

    def observe(self, status: int, seconds: float, outcome: str | None) -> None:
        """Record a request answered ``status`` after ``seconds``; ``outcome`` is :data:`STORED`,
        :data:`DUPLICATE`, one of :data:`REJECT_REASONS`, or ``None`` (e.g. a 503)."""


class PrometheusMetrics:
    """The ``pilot_webhook*`` series, registered in ``registry`` (a new one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        _check_multiprocess_mode()
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.received = Counter(
            "pilot_webhooks_received", "Webhook requests received.", registry=self.registry
        )
        self.rejected = Counter(
            "pilot_webhooks_rejected",
            "Webhook requests refused, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "pilot_webhooks_duplicates", "Verified webhooks stored before (replays).", registry=self.registry
        )
        self.stored = Counter("pilot_webhooks_stored", "Verified webhooks stored.", registry=self.registry)
        self.seconds = Histogram(
            "pilot_webhook_request_seconds",
            "Seconds to answer a webhook request.",
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.unsubscribes = Counter(
            "pilot_unsubscribes",
            "Unsubscribes recorded by the unsubscribe endpoints, by source and scope.",
            ["source", "scope"],
            registry=self.registry,
        )
        # Children resolved once: .labels() costs a lock and a dict lookup per call.
        self._rejected = {reason: self.rejected.labels(reason) for reason in REJECT_REASONS}

    def observe(self, status: int, seconds: float, outcome: str | None) -> None:
        """Count the request, its latency and its outcome."""
        self.received.inc()
        self.seconds.observe(seconds)
        if outcome == STORED:
            self.stored.inc()
        elif outcome == DUPLICATE:
            self.duplicates.inc()
        elif outcome in self._rejected:
            self._rejected[outcome].inc()

    def count_unsubscribe(self, source: str, scope: str) -> None:
        """Count one new unsubscribe (``source``: one_click or unsubscribe_page; ``scope``: topic or
        everything)."""
        self.unsubscribes.labels(source, scope).inc()

    def exposition(self) -> bytes:
        """The text exposition: summed across worker processes in multiprocess mode."""
        return exposition(self.registry)


def exposition(registry: CollectorRegistry) -> bytes:
    """``registry`` in the text format, or every process's values when :data:`MULTIPROC_ENV` is set."""
    if os.environ.get(MULTIPROC_ENV):
        aggregate = CollectorRegistry()
        MultiProcessCollector(aggregate)  # type: ignore[no-untyped-call]
        return generate_latest(aggregate)
    return generate_latest(registry)


def _check_multiprocess_mode() -> None:
    # Set after prometheus-client was imported, the variable would make /metrics read files no
    # process writes: every worker's counts would silently be missing.
    if os.environ.get(MULTIPROC_ENV) and values.ValueClass is values.MutexValue:
        raise ConfigError(f"{MULTIPROC_ENV} was set after prometheus_client was imported")


def rejection_reason(verification_reason: str) -> str:
    """The :data:`REJECT_REASONS` entry of a ``WebhookVerificationError`` reason."""
    if verification_reason.startswith("missing header"):
        return "headers"
    if "timestamp" in verification_reason:
        return "timestamp"
    if verification_reason.startswith("malformed header"):
        return "headers"
    if "signature" in verification_reason:
        return "signature"
    return "malformed"
