"""ResendHTTP: requests built as httpx.Client would build them, sent straight to the transport."""

from __future__ import annotations

import http.server

import httpx
import pytest

from shared.resend_http import ResendHTTP, environment_proxy
from tests.local_http import LocalHTTPServer

TIMEOUT = httpx.Timeout(7.0, connect=2.0)


class Recorder:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"id": "e-1"}, headers={"ratelimit-limit": "2"})


def connection(base_url: str, recorder: Recorder) -> ResendHTTP:
    return ResendHTTP(
        base_url, timeout=TIMEOUT, headers={"User-Agent": "ua/1"}, transport=httpx.MockTransport(recorder)
    )


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://api.resend.test", "https://api.resend.test/emails/abc"),
        ("https://api.resend.test/", "https://api.resend.test/emails/abc"),
        ("http://127.0.0.1:8025/proxy", "http://127.0.0.1:8025/proxy/emails/abc"),
    ],
)
def test_a_path_is_appended_to_the_base_url(base_url: str, expected: str) -> None:
    recorder = Recorder()
    connection(base_url, recorder).request("GET", "/emails/abc")
    assert str(recorder.requests[0].url) == expected


def test_request_headers_are_added_to_the_default_ones_and_win() -> None:
    recorder = Recorder()
    http = connection("https://api.resend.test", recorder)
    http.request("POST", "/emails", content=b"{}", headers={"Idempotency-Key": "k", "User-Agent": "ua/2"})
    sent = recorder.requests[0]
    assert (sent.headers["Idempotency-Key"], sent.headers["User-Agent"]) == ("k", "ua/2")
    assert sent.headers["Content-Length"] == "2"
    assert sent.content == b"{}"


def test_the_timeouts_go_with_every_request() -> None:
    recorder = Recorder()
    connection("https://api.resend.test", recorder).request("GET", "/domains")
    assert recorder.requests[0].extensions["timeout"] == TIMEOUT.as_dict()


def test_the_answer_is_read_and_knows_its_request() -> None:
    recorder = Recorder()
    response = connection("https://api.resend.test", recorder).request("POST", "/emails", content=b"{}")
    assert response.json() == {"id": "e-1"}
    assert response.headers["ratelimit-limit"] == "2"
    assert response.request is recorder.requests[0]


def test_a_transport_failure_is_raised_as_httpx_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    http = ResendHTTP("https://api.resend.test", timeout=TIMEOUT, transport=httpx.MockTransport(refuse))
    with pytest.raises(httpx.ConnectError):
        http.request("GET", "/domains")


def test_a_closed_connection_refuses_requests() -> None:
    http = connection("https://api.resend.test", Recorder())
    http.close()
    assert http.is_closed
    with pytest.raises(RuntimeError, match="closed"):
        http.request("GET", "/domains")


def test_the_environment_proxy_is_used_as_httpx_client_would(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert environment_proxy(httpx.URL("https://api.resend.com/")) == "http://proxy.internal:3128"


def test_no_proxy_hosts_are_reached_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "api.resend.com")
    assert environment_proxy(httpx.URL("https://api.resend.com/")) is None


def test_requests_go_through_the_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with RecordingProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with ResendHTTP("http://resend.invalid", timeout=TIMEOUT) as through_proxy:
            response = through_proxy.request("GET", "/domains")
    assert response.status_code == 200
    assert proxy.request_lines == ["GET http://resend.invalid/domains HTTP/1.1"]


class RecordingProxy(LocalHTTPServer):
    """An HTTP proxy on a free port that answers every request 200 and records its request line."""

    def __init__(self) -> None:
        self.request_lines: list[str] = []
        lines = self.request_lines

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                lines.append(self.requestline)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(Handler)
