"""ResendHTTP: requests built as httpx.Client would build them, sent straight to the transport."""

from __future__ import annotations

import httpx
import pytest

from shared.resend_http import ResendHTTP

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
