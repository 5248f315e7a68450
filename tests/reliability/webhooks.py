"""Webhook traffic for the reliability scenarios: sent emails in the ledger, signed Resend events for
them, a paced flood that measures latency, a sender that retries like Svix, and event counts.

Requests are signed by the independent ``standardwebhooks`` library (``tests/webhook_requests.py``).
"""

from __future__ import annotations

import contextlib
import http.client
import multiprocessing
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from shared.models import EmailMetric, WebhookEvent
from tests.send_helpers import add_connector, add_task
from tests.webhook_factories import resend_body
from tests.webhook_requests import SECRET_A, SignedRequest, signed

#: What the receiver is configured with in every scenario.
SECRET = SECRET_A


@dataclass(frozen=True)
class SentEmail:
    """A ledger row Resend accepted: its Resend id and recipient."""

    email_id: str
    recipient: str


def seed_sent_emails(
    factory: sessionmaker[Session],
    n: int,
    *,
    per_task: int = 300,
    connector: tuple[uuid.UUID, uuid.UUID] | None = None,
) -> list[SentEmail]:
    """``n`` sent ledger rows (tasks of ``per_task`` emails) of ``connector`` (organization id,
    connector id), else of a new organization and connector."""
    organization_id, connector_id = connector or add_connector(factory)
    emails: list[SentEmail] = []
    for start in range(0, n, per_task):
        task_id = add_task(factory, organization_id)
        batch = [
            SentEmail(str(uuid.uuid4()), f"reader-{i:06d}-{uuid.uuid4().hex[:6]}@example.test")
            for i in range(start, min(n, start + per_task))
        ]
        with transaction(factory) as session:
            session.execute(
                text(
                    "INSERT INTO email_messages (organization_id, connector_id, task_id, idempotency_key,"
                    " recipient, subject, status, resend_email_id, sent_at, attempts)"
                    " SELECT :org, :connector, :task, 'seed/' || e.id, e.recipient, 'Hello', 'sent', e.id,"
                    " now(), 1 FROM unnest(CAST(:ids AS text[]), CAST(:recipients AS text[]))"
                    " AS e(id, recipient)"
                ),
                {
                    "org": organization_id,
                    "connector": connector_id,
                    "task": task_id,
                    "ids": [e.email_id for e in batch],
                    "recipients": [e.recipient for e in batch],
                },
            )
        emails += batch
    return emails


def event_request(email: SentEmail, event_type: str = "delivered", **extra: object) -> SignedRequest:
    """A signed ``email.<event_type>`` delivery for ``email``, timestamped now."""
    body = resend_body(event_type, email.email_id, recipient=email.recipient, **extra)
    return signed(body, secret=SECRET, timestamp=int(time.time()))


def hard_bounce_request(email: SentEmail) -> SignedRequest:
    """A signed permanent bounce for ``email``."""
    bounce = {"type": "Permanent", "subType": "General", "message": "no such mailbox"}
    return event_request(email, "bounced", bounce=bounce)


# --- a paced flood ------------------------------------------------------------------------------------


@dataclass
class FloodResult:
    """Statuses (``0`` for a connection error) and latencies (s) of every request, and the time taken."""

    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def _connection(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)


def _post(connection: http.client.HTTPConnection, path: str, request: SignedRequest) -> int:
    connection.request("POST", path, body=request.body, headers=request.headers)
    response = connection.getresponse()
    response.read()
    return response.status


def _flood_process(
    url: str, requests: Sequence[SignedRequest], start_at: float, interval: float, threads: int
) -> tuple[dict[int, int], list[float]]:
    """Send ``requests[i]`` at ``start_at + i * interval`` from ``threads`` keep-alive connections."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    lock = threading.Lock()
    path = urlsplit(url).path

    def run(offset: int) -> None:
        connection = _connection(url)
        for index in range(offset, len(requests), threads):
            delay = start_at + index * interval - time.time()
            if delay > 0:
                time.sleep(delay)
            began = time.perf_counter()
            try:
                status = _post(connection, path, requests[index])
            except (OSError, http.client.HTTPException):
                status = 0
                connection.close()
                connection = _connection(url)
            took = time.perf_counter() - began
            with lock:
                statuses[status] += 1
                latencies.append(took)
        connection.close()

    workers = [threading.Thread(target=run, args=(offset,)) for offset in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return dict(statuses), latencies


def flood(
    url: str, requests: Sequence[SignedRequest], *, per_second: float, processes: int = 2, threads: int = 8
) -> FloodResult:
    """Post every request once at ``per_second`` overall (spread over processes and threads)."""
    start_at = time.time() + 1.0  # every process ready before the first request is due
    interval = processes / per_second
    shares = [list(requests[p::processes]) for p in range(processes)]
    context = multiprocessing.get_context("spawn")  # the test process has threads: never fork it
    result = FloodResult()
    with context.Pool(processes) as pool:
        started = time.monotonic()
        answers = pool.starmap(
            _flood_process,
            [(url, share, start_at + p / per_second, interval, threads) for p, share in enumerate(shares)],
        )
        result.seconds = time.monotonic() - started - 1.0
    for statuses, latencies in answers:
        result.statuses.update(statuses)
        result.latencies += latencies
    return result


# --- a sender that retries like Svix ---------------------------------------------------------------------


class RetryingSender:
    """Posts each delivery until it gets a 2xx, retrying non-2xx answers and connection errors.

    Resend retries on its own schedule (5 s, 5 min, ...); here a retry follows ``retry_after`` s.
    ``answers`` counts every answer (``0`` for a connection error).
    """

    def __init__(self, url: str, *, threads: int = 8, retry_after: float = 0.5) -> None:
        self.url = url
        self.threads = threads
        self.retry_after = retry_after
        self.answers: Counter[int] = Counter()
        self._lock = threading.Lock()

    def send_all(self, requests: Sequence[SignedRequest], *, per_second: float) -> None:
        """Post every request (paced at ``per_second``) until each was accepted."""
        path = urlsplit(self.url).path
        start_at = time.time()

        def run(offset: int) -> None:
            connection = _connection(self.url)
            for index in range(offset, len(requests), self.threads):
                delay = start_at + index / per_second - time.time()
                if delay > 0:
                    time.sleep(delay)
                while True:
                    try:
                        status = _post(connection, path, requests[index])
                    except (OSError, http.client.HTTPException):
                        status = 0
                        connection.close()
                        connection = _connection(self.url)
                    with self._lock:
                        self.answers[status] += 1
                    if 200 <= status < 300:
                        break
                    time.sleep(self.retry_after)
            connection.close()

        workers = [threading.Thread(target=run, args=(offset,)) for offset in range(self.threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()


@contextlib.contextmanager
def sending_in_background(
    sender: RetryingSender, requests: Sequence[SignedRequest], *, per_second: float
) -> Iterator[threading.Thread]:
    """Run :meth:`RetryingSender.send_all` in a thread for the block; joins it at the end."""
    thread = threading.Thread(target=sender.send_all, args=(requests,), kwargs={"per_second": per_second})
    thread.start()
    try:
        yield thread
    finally:
        thread.join()


# --- counts ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventCounts:
    stored: int
    processed: int
    failed: int
    metrics: int


def event_counts(factory: sessionmaker[Session]) -> EventCounts:
    """Stored webhook events, those processed, those with an error, and metric rows."""
    with factory() as session:
        stored = session.scalar(select(func.count()).select_from(WebhookEvent)) or 0
        processed = session.scalar(select(func.count()).where(WebhookEvent.processed_at.is_not(None))) or 0
        failed = session.scalar(select(func.count()).where(WebhookEvent.error.is_not(None))) or 0
        metrics = session.scalar(select(func.count()).select_from(EmailMetric)) or 0
    return EventCounts(stored, processed, failed, metrics)
