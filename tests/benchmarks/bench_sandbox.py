"""How fast the sandbox accepts sends (rate limiting off, no webhook URL), with a concurrent client.

Prints accepted `POST /emails` per second and batch emails per second (batches of 100), median of
``RUNS`` runs. The client is ``PROCESSES`` processes x ``THREADS`` threads, each with one keep-alive
connection; on a 2-core machine the client takes CPU from the server, so figures are a lower bound.

    .venv/bin/python tests/benchmarks/bench_sandbox.py
"""

from __future__ import annotations

import json
import multiprocessing
import re
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.sandbox_process import running_sandbox

RUNS = 3
SECONDS = 4.0
PROCESSES = 2
THREADS = 4
AUTH = {"Authorization": "Bearer re_bench"}
EMAIL = {
    "from": "Bench <bench@example.com>",
    "to": "someone@example.com",
    "subject": "Benchmark",
    "html": "<p>hi</p>",
}
BATCH = [
    {**EMAIL, "to": f"user{i}@example.com", "tags": [{"name": "i", "value": str(i)}]} for i in range(100)
]


def _request_bytes(host: str, path: str, body: object) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {AUTH['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def _read_response(sock: socket.socket, buffer: bytes) -> tuple[int, bytes]:
    """Read one HTTP/1.1 response from a keep-alive socket; its status and the bytes after it."""
    while b"\r\n\r\n" not in buffer:
        buffer += sock.recv(65536)
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(head[9:12]), rest[length:]


def _client_thread(url: str, path: str, body: object, deadline: float, counts: list[int]) -> None:
    # A raw keep-alive HTTP/1.1 client: httpx costs more CPU per request than the sandbox itself, and on
    # 2 cores the client's CPU is taken from the server.
    host, port = url.removeprefix("http://").split(":")
    request = _request_bytes(host, path, body)
    accepted = 0
    with socket.create_connection((host, int(port))) as sock:
        time.sleep(max(0.0, deadline - SECONDS - time.monotonic()))  # start together
        buffer = b""
        while time.monotonic() < deadline:
            sock.sendall(request)
            status, buffer = _read_response(sock, buffer)
            accepted += status == 200
    counts.append(accepted)


def _client_process(
    url: str, path: str, body: object, deadline: float, queue: multiprocessing.Queue[int]
) -> None:
    counts: list[int] = []
    threads = [
        threading.Thread(target=_client_thread, args=(url, path, body, deadline, counts))
        for _ in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put(sum(counts))


def requests_per_second(url: str, path: str, body: object) -> float:
    """Accepted requests per second over ``SECONDS`` from ``PROCESSES`` x ``THREADS`` clients."""
    queue: multiprocessing.Queue[int] = multiprocessing.Queue()
    start = time.monotonic() + 0.5  # let every process start before the clock runs
    deadline = start + SECONDS
    processes = [
        multiprocessing.Process(target=_client_process, args=(url, path, body, deadline, queue))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    total = sum(queue.get() for _ in processes)
    for process in processes:
        process.join()
    return total / SECONDS


def main() -> None:
    singles: list[float] = []
    batches: list[float] = []
    with running_sandbox(rate_limit_per_second=0) as sandbox:
        requests_per_second(sandbox.url, "/emails", EMAIL)  # warm-up
        for _ in range(RUNS):
            sandbox.reset()
            singles.append(requests_per_second(sandbox.url, "/emails", EMAIL))
            sandbox.reset()
            batches.append(100 * requests_per_second(sandbox.url, "/emails/batch", BATCH))
    print(
        f"sandbox POST /emails accepted/s: median {statistics.median(singles):,.0f} (runs: "
        + ", ".join(f"{v:,.0f}" for v in singles)
        + ")"
    )
    print(
        f"sandbox POST /emails/batch emails/s (batches of 100): median {statistics.median(batches):,.0f} "
        "(runs: " + ", ".join(f"{v:,.0f}" for v in batches) + ")"
    )
    print(
        f"client: {PROCESSES} processes x {THREADS} threads, {SECONDS:.0f} s per run, "
        "rate limiting off, no webhooks"
    )


if __name__ == "__main__":
    main()
