"""The worker's Prometheus metrics, correct under Celery's prefork pool.

Pool children count into prometheus-client's multiprocess files; :func:`start_exporter` prepares the
directory in the main process before the pool forks and serves ``/metrics``, summed over every child.
The metrics: docs/operations.md, "Metrics"; how they cross processes: docs/architecture.md, §10.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.models import ReputationScope

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram

    from shared.rate_limit import ConnectorLimits, RateLimiter
    from shared.reputation.guard import Evaluation
    from shared.settings import Settings

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Seconds between two samples of a connector's buckets in one process (each costs two Redis calls).
BUCKET_SAMPLE_INTERVAL_S = 5.0
#: Task durations from a few milliseconds (one email) to the send time limit.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: Enqueue-to-sent seconds: a transactional email in well under a second, a campaign over hours.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0, 86400.0)
#: Emails per request, from a single send to a full batch.
UNIT_SIZE_BUCKETS = (1, 2, 5, 10, 25, 50, 75, 100)


@dataclass(frozen=True)
class Instruments:
    """The metric objects (one set per process)."""

    sends: Counter
    resend_responses: Counter
    deferrals: Counter
    unit_size: Histogram
    send_latency: Histogram
    bucket_tokens: Gauge
    task_duration: Histogram
    rejected_messages: Counter
    reputation_rate: Gauge
    reputation_changes: Counter


_instruments_lock = threading.Lock()


def instruments() -> Instruments:
    """This process's metrics, made on first use (in the default registry).

    Thread-safe: under a threads pool many tasks ask at once, and ``functools.cache`` alone let two
    threads both build them; the second registration raised ``DuplicateTimeseries`` inside a send
    task, which Celery acked as failed (a send not yet in the ledger was lost).
    """
    with _instruments_lock:
        return _build_instruments()


@functools.cache
def _build_instruments() -> Instruments:
    from prometheus_client import Counter, Gauge, Histogram

    return Instruments(
        sends=Counter("pilot_sends_total", "Outcomes decided for recipients, by result.", ["result"]),
        resend_responses=Counter(
            "pilot_resend_responses_total",
            "Answers from Resend by HTTP status and error name.",
            ["status", "error_name"],
        ),
        deferrals=Counter("pilot_deferrals_total", "Ledger rows made to wait, by reason.", ["reason"]),
        unit_size=Histogram(
            "pilot_emails_per_request", "Emails carried by each request to Resend.", buckets=UNIT_SIZE_BUCKETS
        ),
        send_latency=Histogram(
            "pilot_send_latency_seconds",
            "Seconds from a send's row being written to Resend accepting it, by class of mail.",
            ["priority"],
            buckets=LATENCY_BUCKETS,
        ),
        bucket_tokens=Gauge(
            "pilot_bucket_tokens_remaining",
            "Email tokens left in a connector's bucket (sampled).",
            ["connector_id", "window"],
            multiprocess_mode="mostrecent",
        ),
        task_duration=Histogram(
            "pilot_task_duration_seconds", "Run time of worker tasks.", ["task"], buckets=DURATION_BUCKETS
        ),
        rejected_messages=Counter(
            "pilot_worker_rejected_messages_total",
            "Broker messages the worker refused and dead-lettered, by reason.",
            ["reason"],
        ),
        reputation_rate=Gauge(
            "pilot_reputation_rate",
            "Hard bounces or complaints per recipient over the reputation window, by organization "
            "and connector (as last judged).",
            ["scope", "scope_id", "kind"],
            multiprocess_mode="mostrecent",
        ),
        reputation_changes=Counter(
            "pilot_reputation_state_changes_total",
            "Reputation guard state changes, by scope kind and the state entered.",
            ["scope", "state"],
        ),
    )


# Hot-path updates -------------------------------------------------------------------------------


def count_results(statuses: Iterable[str]) -> None:
    """One ``pilot_sends_total`` increment per recipient answered."""
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    sends = instruments().sends
    for status, n in counts.items():
        sends.labels(status).inc(n)


def count_response(status: int | None, error_name: str | None = None) -> None:
    """One answer from Resend (``status`` None: timeout or connection error)."""
    label = "none" if status is None else str(status)
    instruments().resend_responses.labels(label, error_name or "").inc()


def count_deferrals(reason: str, rows: int = 1) -> None:
    """``rows`` ledger rows made to wait for ``reason``."""
    if rows:
        instruments().deferrals.labels(reason).inc(rows)


def count_unit(rows: int) -> None:
    """A request to Resend carried ``rows`` emails."""
    instruments().unit_size.observe(rows)


def observe_sent(priority: str, seconds: Iterable[float]) -> None:
    """Emails of class ``priority`` accepted by Resend, each ``seconds`` after its row was written."""
    histogram = instruments().send_latency.labels(priority)
    for value in seconds:
        histogram.observe(value)


def count_rejected_message(reason: str) -> None:
    """The worker refused a broker message for ``reason`` (a ``DeadLetterReason`` value)."""
    instruments().rejected_messages.labels(reason).inc()


def observe_reputation(evaluations: Iterable[Evaluation]) -> None:
    """The rates the guard judged (organizations and connectors: campaigns would grow without end)
    and its state changes."""
    tools = instruments()
    for judged in evaluations:
        if judged.changed:
            tools.reputation_changes.labels(judged.scope.value, judged.after.value).inc()
        if judged.scope is ReputationScope.CAMPAIGN:
            continue
        rates = {"bounce": judged.window.bounce_rate, "complaint": judged.window.complaint_rate}
        for kind, rate in rates.items():
            tools.reputation_rate.labels(judged.scope.value, str(judged.scope_id), kind).set(rate or 0.0)


def observe_task(task: str, seconds: float) -> None:
    """A task ran for ``seconds``."""
    instruments().task_duration.labels(task).observe(seconds)


_last_sample: dict[uuid.UUID, float] = {}
_sample_lock = threading.Lock()


def sample_buckets(
    limiter: RateLimiter, connector_id: uuid.UUID, limits: ConnectorLimits, *, force: bool = False
) -> None:
    """Record the tokens left in the connector's hour and day buckets, at most every few seconds."""
    now = time.monotonic()
    with _sample_lock:
        if not force and now - _last_sample.get(connector_id, -BUCKET_SAMPLE_INTERVAL_S) < (
            BUCKET_SAMPLE_INTERVAL_S
        ):
            return
        _last_sample[connector_id] = now
    from shared.errors import RateLimitBackendUnavailable

    gauge = instruments().bucket_tokens
    try:
        for window in ("hour", "day"):
            stats = limiter.get_usage_stats(connector_id, window, limits)
            gauge.labels(str(connector_id), window).set(stats.remaining)
    except RateLimitBackendUnavailable:
        pass  # a metric is not worth an error: the send path reports Redis being down


# Exporter (worker main process) -------------------------------------------------------------------


@dataclass
class Exporter:
    """The running ``/metrics`` server and the directory it reads."""

    directory: str
    owns_directory: bool
    server: Any = None
    thread: threading.Thread | None = None

    def stop(self) -> None:
        """Stop serving; remove the directory if this worker made it."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)


def prepare_directory() -> tuple[str, bool]:
    """The multiprocess directory: the configured one emptied, else a fresh temporary one (made here).

    Returns the path and whether this call created it. Sets ``PROMETHEUS_MULTIPROC_DIR``, which the
    pool's children inherit.
    """
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        os.makedirs(configured, exist_ok=True)
        for name in os.listdir(configured):
            if name.endswith(".db"):  # a previous run's values would be added to ours
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(configured, name))
        directory, owned = configured, False
    else:
        directory, owned = tempfile.mkdtemp(prefix="pilot-worker-metrics-"), True
        os.environ[MULTIPROC_ENV] = directory
    _use_multiprocess_values()
    return directory, owned


def _use_multiprocess_values() -> None:
    # prometheus-client chose its value storage when first imported; if that happened before the
    # directory was set, choose again (metrics made from now on read ``values.ValueClass``; the
    # main process makes none before this, and the pool's children make theirs after the fork).
    from prometheus_client import values

    values.ValueClass = values.get_value_class()


def start_exporter(settings: Settings) -> Exporter | None:
    """Serve ``/metrics`` summed over every pool process, on ``PILOT_WORKER_METRICS_PORT`` (0: off)."""
    port = settings.pilot_worker_metrics_port
    if not port:
        return None
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    directory, owned = prepare_directory()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    try:
        server, thread = start_http_server(port, registry=registry)
    except OSError as exc:
        # Metrics are not worth refusing to send email for (e.g. a second worker on one host).
        logger.warning("worker metrics not served: port %s: %s (set PILOT_WORKER_METRICS_PORT)", port, exc)
        return Exporter(directory, owned)
    logger.info("worker metrics on :%s/metrics", port)
    return Exporter(directory, owned, server, thread)


def mark_process_dead(pid: int) -> None:
    """Drop the live gauges of a pool child that exited (its counters stay in the sums)."""
    if not os.environ.get(MULTIPROC_ENV):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


class WorkerSendMetrics:
    """The send pipeline's metrics (``shared.sending.observers.SendMetrics``) as this module's."""

    def count_results(self, statuses: Iterable[str]) -> None:
        """See :func:`count_results`."""
        count_results(statuses)

    def count_response(self, status: int | None, error_name: str | None = None) -> None:
        """See :func:`count_response`."""
        count_response(status, error_name)

    def count_deferrals(self, reason: str, rows: int = 1) -> None:
        """See :func:`count_deferrals`."""
        count_deferrals(reason, rows)

    def count_units(self, rows: int) -> None:
        """See :func:`count_unit`."""
        count_unit(rows)

    def observe_sent(self, priority: str, seconds: Iterable[float]) -> None:
        """See :func:`observe_sent`."""
        observe_sent(priority, seconds)

    def sample_buckets(self, limiter: RateLimiter, connector_id: object, limits: ConnectorLimits) -> None:
        """See :func:`sample_buckets`."""
        if isinstance(connector_id, uuid.UUID):
            sample_buckets(limiter, connector_id, limits)
