"""A recording HTTP proxy in front of the sandbox: every exchange with its time, key, status, retry-after.

The end-to-end tests read it to check timing properties the sandbox cannot report, such as "a 429
with ``retry-after`` is never retried sooner".
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


@dataclass(frozen=True)
class Exchange:
    """One forwarded request: when it arrived and when its answer left (monotonic seconds)."""

    path: str
    idempotency_key: str | None
    status: int
    retry_after: float | None
    started: float
    answered: float
    #: The ``to`` addresses of the email(s) it carried.
    recipients: tuple[str, ...] = ()


class RecordingProxy:
    """Forwards to ``upstream`` and records each exchange."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._client = httpx.Client(base_url=upstream, timeout=60)

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        return self._client.request(method, path, headers=headers, content=body)

    def close(self) -> None:
        self._client.close()


def _handler(proxy: RecordingProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _relay(self) -> None:
            started = time.monotonic()
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            answer = proxy.forward(self.command, self.path, headers, body)
            self.send_response(answer.status_code)
            for name, value in answer.headers.items():
                if name.lower() not in HOP_HEADERS:
                    self.send_header(name, value)
            self.send_header("content-length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)
            retry_after = answer.headers.get("retry-after")
            proxy.record(
                Exchange(
                    path=self.path.split("?")[0],
                    idempotency_key=self.headers.get("idempotency-key"),
                    status=answer.status_code,
                    retry_after=float(retry_after) if retry_after else None,
                    started=started,
                    answered=time.monotonic(),
                    recipients=_recipients(body),
                )
            )

        do_GET = do_POST = _relay

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    return Handler


def _recipients(body: bytes) -> tuple[str, ...]:
    try:
        parsed = json.loads(body) if body else []
    except ValueError:
        return ()
    emails = parsed if isinstance(parsed, list) else [parsed]
    return tuple(to for email in emails if isinstance(email, dict) for to in email.get("to") or [])


@contextlib.contextmanager
def recording_proxy(upstream: str) -> Iterator[tuple[str, RecordingProxy]]:
    """Serve a proxy to ``upstream`` on a free loopback port; yields its URL and the recorder."""
    proxy = RecordingProxy(upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", proxy
    finally:
        server.shutdown()
        server.server_close()
        proxy.close()
