"""The real sandbox server (gunicorn subprocess) over real HTTP, sending real signed webhooks."""

from __future__ import annotations

import json

import httpx
import pytest
import standardwebhooks

from shared.webhook_signature import verify
from tests.sandbox_process import SANDBOX_WEBHOOK_SECRET, SandboxHandle
from tests.webhook_sink import WebhookSink

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": "Bearer re_integration"}
EMAIL = {
    "from": "Acme <onboarding@resend.dev>",
    "to": "complained+it@resend.dev",
    "subject": "Integration",
    "tags": [{"name": "task_id", "value": "t-42"}],
}


@pytest.fixture
def sandbox(sandbox_server: SandboxHandle, sink: WebhookSink) -> SandboxHandle:
    """The module's sandbox, reset, with faults and rate limiting off."""
    sandbox_server.configure(drop_rate=0.0, rate_limit_per_second=0.0)
    sandbox_server.reset()
    return sandbox_server


def test_sent_email_produces_signed_webhooks_both_verifiers_accept(
    sandbox: SandboxHandle, sink: WebhookSink
) -> None:
    email_id = httpx.post(f"{sandbox.url}/emails", json=EMAIL, headers=AUTH).json()["id"]
    received = sink.wait_for(3)
    assert len(received) == 3
    for headers, body in received:
        assert verify(body, headers, [SANDBOX_WEBHOOK_SECRET]) == headers["svix-id"]
        unbranded = {k.replace("svix-", "webhook-"): v for k, v in headers.items() if k.startswith("svix-")}
        standardwebhooks.Webhook(SANDBOX_WEBHOOK_SECRET).verify(body, unbranded, json_parse=False)
    events = sorted((json.loads(body) for _, body in received), key=lambda e: e["created_at"])
    assert [e["type"] for e in events] == ["email.sent", "email.delivered", "email.complained"]
    assert {e["data"]["email_id"] for e in events} == {email_id}
    assert events[0]["data"]["tags"] == {"task_id": "t-42"}


def test_failed_webhook_is_retried_with_same_svix_id(sandbox: SandboxHandle, sink: WebhookSink) -> None:
    sink.statuses.extend([500, 500])
    httpx.post(f"{sandbox.url}/emails", json={**EMAIL, "to": "suppressed@resend.dev"}, headers=AUTH)
    received = sink.wait_for(3)
    assert len(received) == 3
    assert len({headers["svix-id"] for headers, _ in received}) == 1


def test_dropped_connection_after_accept_then_retry_replays_the_id(sandbox: SandboxHandle) -> None:
    sandbox.configure(drop_rate=1.0)
    headers = {**AUTH, "Idempotency-Key": "drop-it"}
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{sandbox.url}/emails", json=EMAIL, headers=headers)
    [recorded] = sandbox.emails()
    sandbox.configure(drop_rate=0.0)
    assert httpx.post(f"{sandbox.url}/emails", json=EMAIL, headers=headers).json()["id"] == recorded["id"]
    assert [e["accept_count"] for e in sandbox.emails()] == [1]


def test_batch_over_http_returns_ids(sandbox: SandboxHandle) -> None:
    items = [{**EMAIL, "to": f"delivered+{i}@resend.dev"} for i in range(100)]
    response = httpx.post(f"{sandbox.url}/emails/batch", json=items, headers=AUTH)
    assert len(response.json()["data"]) == 100
    assert sandbox.stats()["counts"]["accepted"] == 100


def test_rate_limit_over_http_sends_resend_headers(sandbox: SandboxHandle) -> None:
    # 0.01/s is one request per 100 s window: the second request is refused however slow the machine.
    sandbox.configure(rate_limit_per_second=0.01)
    first = httpx.post(f"{sandbox.url}/emails", json=EMAIL, headers=AUTH)
    second = httpx.post(f"{sandbox.url}/emails", json=EMAIL, headers=AUTH)
    assert first.status_code == 200
    assert first.headers["ratelimit-limit"] == "1"
    assert second.status_code == 429
    assert second.json()["name"] == "rate_limit_exceeded"
    assert int(second.headers["retry-after"]) >= 1
    assert sum(sandbox.stats()["requests_per_second"].values()) == 2


def test_reset_over_http_empties_the_sandbox(sandbox: SandboxHandle) -> None:
    httpx.post(f"{sandbox.url}/emails", json=EMAIL, headers=AUTH)
    sandbox.reset()
    assert sandbox.emails() == []
