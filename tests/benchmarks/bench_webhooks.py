"""Webhook receiver throughput and latency, beside a Flask endpoint that only answers 200, and
events processed per second into PostgreSQL.

1. gunicorn, with the receiver's settings for both apps (``webhook_receiver.gunicorn_conf``: 2 gevent
   workers), serves the real receiver (verify, parse, INSERT ... ON CONFLICT into webhook_events,
   publish the Celery task to Redis) and a trivial Flask app answering 200. A client of
   ``PROCESSES`` x ``THREADS`` keep-alive connections posts distinct, pre-signed deliveries.
   Printed: requests/s and p50/p99 latency of each, and the ratio (target >= 0.5x). Median of
   ``RUNS`` alternating runs.
2. Stored events (sent, delivered, opened, clicked for each of ``MESSAGES`` messages) processed in
   ``PROCESSING_PROCESSES`` processes, as Celery prefork children run ``pilot.process_webhook_event``
   on the receiver's batches of up to ``EVENT_BATCH`` ids (``process_batch``; ``--one-by-one``: one
   transaction per event, the previous behaviour): events/s into email_metrics, message status,
   suppression and task metrics.

On a 2-core machine the client and the server share the CPU, so figures are lower bounds.

    .venv/bin/python tests/benchmarks/bench_webhooks.py [--one-by-one] [--http-only | --events-only]
"""

from __future__ import annotations

import contextlib
import multiprocessing
import re
import socket
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shared import migrations
from shared.db import make_engine, make_sessionmaker, transaction
from shared.settings import load_settings
from tests.conftest import REDIS_URL, TEST_REDIS_DATABASES, create_database, drop_database
from tests.receiver_process import running_gunicorn, running_receiver
from tests.webhook_factories import make_message, make_organization, resend_body, resend_payload, store_event
from tests.webhook_requests import PATH, SECRET_A, signed
from worker.events.tasks import process_batch, process_one_by_one

RUNS = 3
REQUESTS = 3000
PROCESSES = 2
THREADS = 8
MESSAGES = 500
PROCESSING_PROCESSES = 2
#: Event ids per task message (the receiver's BatchingDispatcher sends up to 100).
EVENT_BATCH = 100


def request_bytes(host: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {PATH} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_response(sock: socket.socket, buffer: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 response from a keep-alive socket: its status and the bytes after it."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)content-length: *(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(head[9:12]), rest[length:]


def connection_worker(port: int, requests: list[bytes], latencies: list[float], errors: list[int]) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = b""
    for raw in requests:
        started = time.perf_counter()
        try:
            sock.sendall(raw)
            status, buffer = read_response(sock, buffer)
        except OSError:
            # gunicorn closes idle keep-alive connections: reconnect and resend once.
            sock.close()
            sock = socket.create_connection(("127.0.0.1", port))
            buffer = b""
            sock.sendall(raw)
            status, buffer = read_response(sock, buffer)
        latencies.append(time.perf_counter() - started)
        if status != 200:
            errors.append(status)
    sock.close()


def client_process(args: tuple[int, list[bytes]]) -> tuple[float, float, list[float], list[int]]:
    port, requests = args
    latencies: list[float] = []
    errors: list[int] = []
    slices = [requests[i::THREADS] for i in range(THREADS)]
    threads = [threading.Thread(target=connection_worker, args=(port, s, latencies, errors)) for s in slices]
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return started, time.time(), latencies, errors


def load(port: int, requests: list[bytes]) -> tuple[float, float, float, int]:
    """Requests/s, p50 and p99 (ms), and non-200 answers for ``requests`` spread over the client."""
    with multiprocessing.Pool(PROCESSES) as pool:
        results = pool.map(client_process, [(port, requests[i::PROCESSES]) for i in range(PROCESSES)])
    started = min(r[0] for r in results)
    ended = max(r[1] for r in results)
    latencies = sorted(latency for r in results for latency in r[2])
    errors = sum(len(r[3]) for r in results)
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    return len(requests) / (ended - started), p50, p99, errors


def signed_requests(port: int, count: int) -> list[bytes]:
    """``count`` distinct deliveries (own svix-id each), signed for now."""
    now = int(time.time())
    host = f"127.0.0.1:{port}"
    out = []
    for index in range(count):
        body = resend_body("delivered", f"bench-{uuid.uuid4()}", tags={"i": str(index)})
        request = signed(body, timestamp=now)
        out.append(request_bytes(host, request.body, request.headers))
    return out


@contextlib.contextmanager
def bench_database() -> Iterator[str]:
    name = f"pilot_bench_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        migrations.upgrade(url)
        yield url
    finally:
        drop_database(name)


@contextlib.contextmanager
def isolated_broker() -> Iterator[str]:
    """A Redis database reserved like the tests' ``isolated_redis_url`` (lock key in database 0)."""
    locks = redis.Redis.from_url(REDIS_URL)
    token = uuid.uuid4().hex
    number = next(
        n for n in TEST_REDIS_DATABASES if locks.set(f"pilot-test-redis-db-lock:{n}", token, nx=True, ex=900)
    )
    url = f"{REDIS_URL.rsplit('/', 1)[0]}/{number}"
    database = redis.Redis.from_url(url)
    database.flushdb()
    try:
        yield url
    finally:
        database.flushdb()
        if locks.get(f"pilot-test-redis-db-lock:{number}") == token.encode():
            locks.delete(f"pilot-test-redis-db-lock:{number}")


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def bench_http(database_url: str, broker_url: str) -> None:
    receiver_figures, trivial_figures = [], []
    with (
        running_receiver(database_url=database_url, broker_url=broker_url, secret=SECRET_A) as receiver,
        running_gunicorn("tests.benchmarks.trivial_app:app", env={}) as trivial,
    ):
        warm = signed_requests(port_of(receiver.url), 200)
        load(port_of(receiver.url), warm)
        load(port_of(trivial.url), warm)
        for _ in range(RUNS):
            trivial_figures.append(
                load(port_of(trivial.url), signed_requests(port_of(trivial.url), REQUESTS))
            )
            receiver_figures.append(
                load(port_of(receiver.url), signed_requests(port_of(receiver.url), REQUESTS))
            )
    for label, figures in (("trivial Flask 200", trivial_figures), ("verified webhooks", receiver_figures)):
        rate = statistics.median(f[0] for f in figures)
        p50 = statistics.median(f[1] for f in figures)
        p99 = statistics.median(f[2] for f in figures)
        errors = sum(f[3] for f in figures)
        print(f"{label:>20}: {rate:8.0f} req/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   non-200: {errors}")
    ratio = statistics.median(f[0] for f in receiver_figures) / statistics.median(
        f[0] for f in trivial_figures
    )
    print(f"{'receiver / trivial':>20}: {ratio:.2f}x (target >= 0.5x)")


def _process_slice(args: tuple[str, list[uuid.UUID], bool]) -> dict[str, int]:
    """One worker process: its own engine, the events in task-sized batches, as the task would."""
    database_url, event_ids, one_by_one = args
    engine = make_engine(load_settings(database_url=database_url))
    factory = make_sessionmaker(engine)
    process = process_one_by_one if one_by_one else process_batch
    counts: dict[str, int] = {}
    try:
        for start in range(0, len(event_ids), EVENT_BATCH):
            outcomes, _ = process(factory, [str(i) for i in event_ids[start : start + EVENT_BATCH]])
            for kind, count in outcomes.items():
                counts[kind] = counts.get(kind, 0) + count
        return counts
    finally:
        engine.dispose()


def prepare_events(database_url: str) -> list[uuid.UUID]:
    """``MESSAGES`` sent messages in 10 tasks, and sent/delivered/opened/clicked events for each."""
    engine = make_engine(load_settings(database_url=database_url))
    try:
        with transaction(make_sessionmaker(engine)) as session:
            organization_id, connector_id = make_organization(session)
            messages = []
            for _ in range(10):
                first = make_message(session, organization_id, connector_id)
                messages += [first] + [
                    make_message(session, organization_id, connector_id, task_id=first.task_id)
                    for _ in range(MESSAGES // 10 - 1)
                ]
            return [
                store_event(session, resend_payload(kind, sent.resend_email_id, recipient=sent.recipient))
                for kind in ("sent", "delivered", "opened", "clicked")
                for sent in messages
            ]
    finally:
        engine.dispose()


def bench_processing(database_url: str, *, one_by_one: bool) -> None:
    rates = []
    for _ in range(RUNS):
        event_ids = prepare_events(database_url)
        # Interleaved slices, as the receiver's two workers would publish arrival-ordered batches.
        slices = [
            (database_url, event_ids[i::PROCESSING_PROCESSES], one_by_one)
            for i in range(PROCESSING_PROCESSES)
        ]
        with multiprocessing.Pool(PROCESSING_PROCESSES) as pool:
            started = time.perf_counter()
            counts = pool.map(_process_slice, slices)
            rates.append(len(event_ids) / (time.perf_counter() - started))
        applied = sum(c.get("applied", 0) for c in counts)
        assert applied == len(event_ids), counts
    how = "one transaction per event" if one_by_one else f"batches of {EVENT_BATCH}"
    print(
        f"{'events processed':>20}: {statistics.median(rates):8.0f} events/s into PostgreSQL "
        f"({PROCESSING_PROCESSES} processes, {how}, {len(event_ids)} events, {MESSAGES} messages, 10 tasks; "
        f"runs: {', '.join(f'{r:.0f}' for r in rates)})"
    )


def main() -> None:
    with bench_database() as database_url, isolated_broker() as broker_url:
        if "--events-only" not in sys.argv:
            bench_http(database_url, broker_url)
        if "--http-only" not in sys.argv:
            bench_processing(database_url, one_by_one="--one-by-one" in sys.argv)


if __name__ == "__main__":
    main()
