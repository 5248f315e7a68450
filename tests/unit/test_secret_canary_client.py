"""A canary API key sent through every error path of ResendClient and ResendConnector never leaks.

Requests go over real sockets to a scripted local server, so httpx's and httpcore's own DEBUG logging
runs too. The server even echoes the Authorization header back in an error message, as a careless
proxy might. The canary must appear in no exception (str, repr, traceback with its causes), no log
record, and no repr of the client, the connector or any result.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import fakeredis
import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from shared.connectors.resend import create_resend_connector
from shared.errors import PilotError
from shared.models import Connector
from shared.rate_limit import RateLimiter
from shared.resend_client import ResendClient
from shared.resend_http import ResendHTTP
from shared.settings import load_settings
from tests.local_http import LocalHTTPServer
from tests.send_helpers import add_connector

CANARY = "re_CANARY_client_5b8e2d71"
WRONG_PREFIX_CANARY = "sk_CANARY_client_0c4a9f"
CANARIES = (CANARY, WRONG_PREFIX_CANARY, CANARY.removeprefix("re_"))

#: (status, content type, body); "{auth}" in a body is replaced by the request's Authorization header.
Script = tuple[int, str, str]
JSON = "application/json"


def error(status: int, name: str, message: str) -> Script:
    return status, JSON, json.dumps({"statusCode": status, "name": name, "message": message})


ERROR_ANSWERS: list[Script] = [
    error(500, "application_error", "Something went wrong"),
    error(503, "service_unavailable", "Down"),
    (502, "text/html", "<html>bad gateway</html>"),
    error(429, "rate_limit_exceeded", "Too many requests"),
    error(429, "daily_quota_exceeded", "Daily quota"),
    error(429, "monthly_quota_exceeded", "Monthly quota"),
    error(409, "concurrent_idempotent_requests", "In flight"),
    error(409, "invalid_idempotent_request", "Changed"),
    error(401, "missing_api_key", "Missing"),
    error(401, "restricted_api_key", "Restricted"),
    error(403, "invalid_api_key", "API key is invalid"),
    error(400, "validation_error", "API key is invalid"),
    (403, "text/html", "<html>error code: 1010</html>"),
    error(422, "validation_error", "Invalid `to` field"),
    error(400, "validation_error", "Your key {auth} is not welcome"),
    (400, JSON, '{"statusCode": 400, "name": "weird", "message": "echo: {auth}"}'),
    (200, "text/plain", "not json {auth}"),
    (200, JSON, '{"data": [{"id": "only-one"}], "errors": [{"index": 5, "message": "{auth}"}]}'),
]


class ScriptedServer(LocalHTTPServer):
    """A local HTTP server answering from a queue (or with a success), on a free port."""

    def __init__(self) -> None:
        self.answers: deque[Script | float] = deque()
        script = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer()

            def _answer(self) -> None:
                answer = script.answers.popleft() if script.answers else (200, JSON, '{"id": "ok"}')
                if isinstance(answer, float):
                    time.sleep(answer)  # longer than the client's read timeout
                    answer = (200, JSON, '{"id": "late"}')
                status, content_type, body = answer
                data = body.replace("{auth}", self.headers.get("Authorization", "")).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("retry-after", "1")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the server's own access log is not under test

        super().__init__(Handler)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as running:
        yield running


@pytest.fixture
def http(server: ScriptedServer) -> Iterator[ResendHTTP]:
    with ResendHTTP(server.url, timeout=httpx.Timeout(0.5, connect=0.5)) as client:
        yield client


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def texts_of(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc)), repr(vars(exc))]


def collect(texts: list[str], call: Callable[[], Any]) -> None:
    """Run ``call``; keep the repr of what it returns, or every text of what it raises."""
    try:
        texts.append(repr(call()))
    except PilotError as exc:
        texts.extend(texts_of(exc))


def sample_email() -> dict[str, Any]:
    return {"from": "a@acme.test", "to": ["b@acme.test"], "subject": "S", "text": "t"}


def assert_no_canary(texts: list[str], caplog: pytest.LogCaptureFixture) -> None:
    logged = [record.getMessage() for record in caplog.records]
    logged += [repr(record.args) for record in caplog.records]
    logged += [record.exc_text or "" for record in caplog.records]
    assert caplog.records, "DEBUG logging captured nothing: the test would prove nothing"
    for canary in CANARIES:
        assert not [text for text in texts if canary in text]
        assert not [text for text in logged if canary in text]


@pytest.fixture(autouse=True)
def debug_logging(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "shared"):
        caplog.set_level(logging.DEBUG, logger=name)


def test_client_error_paths_never_show_the_key(
    server: ScriptedServer, http: ResendHTTP, caplog: pytest.LogCaptureFixture
) -> None:
    client = ResendClient(http=http, api_key=SecretStr(CANARY))
    texts = [repr(client), str(client)]
    server.answers.extend(ERROR_ANSWERS)
    for _ in ERROR_ANSWERS:
        collect(texts, lambda: client.send_email(sample_email(), idempotency_key="k"))
    server.answers.extend(ERROR_ANSWERS)
    for _ in ERROR_ANSWERS:
        collect(texts, lambda: client.send_batch([sample_email()] * 2, idempotency_key="k"))
    server.answers.extend([error(403, "invalid_api_key", "{auth}"), error(401, "restricted_api_key", "r")])
    collect(texts, client.check_key)
    collect(texts, client.check_key)
    server.answers.append(error(404, "not_found", "no domain {auth}"))
    collect(texts, client.check_key)
    server.answers.append(2.0)
    collect(texts, lambda: client.send_email(sample_email(), idempotency_key="k"))  # read timeout

    assert len([text for text in texts if "PilotError" in text or "Resend" in text]) > 40
    assert_no_canary(texts, caplog)


def test_client_refusals_before_any_call_never_show_the_key(caplog: pytest.LogCaptureFixture) -> None:
    texts: list[str] = []
    with ResendHTTP(closed_port_url(), timeout=httpx.Timeout(5.0)) as http:
        client = ResendClient(http=http, api_key=CANARY)
        collect(texts, lambda: client.send_email(sample_email(), idempotency_key=""))
        collect(texts, lambda: client.send_email({**sample_email(), "to": [CANARY]}, idempotency_key="k"))
        collect(texts, lambda: client.send_batch([sample_email()] * 101, idempotency_key="k"))
        collect(texts, lambda: client.send_email(sample_email(), idempotency_key="k"))  # connection refused
        for bad in (CANARY + "\n", CANARY + " x", "é" + CANARY):
            collect(texts, lambda bad=bad: ResendClient(http=http, api_key=bad))

    assert len([text for text in texts if text.startswith("Traceback")]) == 7
    assert_no_canary(texts, caplog)


@pytest.mark.integration  # the connector sends through the ledger: a database of its own
@pytest.mark.parametrize("api_key", [CANARY, WRONG_PREFIX_CANARY])
def test_connector_error_paths_never_show_the_key(
    server: ScriptedServer,
    http: ResendHTTP,
    caplog: pytest.LogCaptureFixture,
    api_key: str,
    session_factory: sessionmaker[Session],
    fresh_database_url: str,
    isolated_redis_url: str,
) -> None:
    _, connector_id = add_connector(
        session_factory, per_hour=10_000, per_day=10_000, default_from="a@acme.test"
    )
    settings = load_settings(
        database_url=fresh_database_url, redis_url=isolated_redis_url, resend_api_key=api_key
    )
    limiter = RateLimiter(
        fakeredis.FakeRedis(), key_prefix=f"canary-{uuid.uuid4().hex}:", requests_per_second=1e6
    )
    connector = create_resend_connector(
        connector_id, session_factory=session_factory, settings=settings, http=http, limiter=limiter
    )

    def active() -> None:  # a key error before made it ``error``: every answer must be tried
        with session_factory.begin() as session:
            session.execute(update(Connector).where(Connector.id == connector_id).values(status="active"))
        connector.status = "active"

    texts = [repr(connector), repr(connector.get_status()), repr(connector.validate_config())]
    for n, answer in enumerate(ERROR_ANSWERS):
        active()
        server.answers.append(answer)
        texts.append(repr(connector.send_email("b@acme.test", f"S{n}", "<p/>", metadata={"k": "v"})))
        active()
        server.answers.append(answer)
        batch = [{"to": f"b{i}@acme.test", "subject": f"B{n}", "body": "x"} for i in range(3)]
        texts.append(repr(connector.send_batch(batch)))
        server.answers.append(answer)
        texts.append(repr(connector.test_connection()))
        texts += [repr(connector.last_error), repr(connector.get_status())]
    active()
    server.answers.append(2.0)
    texts.append(repr(connector.send_email("b@acme.test", "S-timeout", "<p/>")))

    assert any("1010" in text for text in texts)
    assert_no_canary(texts, caplog)
