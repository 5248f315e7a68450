"""Contract: the official `resend` Python SDK drives the real sandbox as it drives Resend.

One sandbox (gunicorn subprocess) serves the module; each test resets it. The SDK's own HTTP client
talks to it, and the sandbox's webhooks are checked with the SDK's own verifier.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, cast

import pytest
import resend
from resend.exceptions import ResendError

from tests.sandbox_process import SANDBOX_WEBHOOK_SECRET, SandboxHandle
from tests.webhook_sink import WebhookSink

pytestmark = pytest.mark.e2e

KEY = "re_sdk_contract"
EMAIL: dict[str, Any] = {
    "from": "Acme <onboarding@resend.dev>",
    "to": ["delivered@resend.dev"],
    "subject": "Contract",
    "html": "<p>Hi</p>",
    "tags": [{"name": "task_id", "value": "t-1"}],
}


@pytest.fixture
def sandbox(
    sandbox_server: SandboxHandle, sink: WebhookSink, monkeypatch: pytest.MonkeyPatch
) -> SandboxHandle:
    """The module's sandbox, reset with its default switches, and the SDK pointed at it."""
    sandbox_server.configure(rate_limit_per_second=0.0, daily_quota=0, stall_rate=0.0)
    sandbox_server.reset()
    monkeypatch.setattr(resend, "api_key", KEY)
    monkeypatch.setattr(resend, "api_url", sandbox_server.url)
    return sandbox_server


def send(email: dict[str, Any], **options: str) -> Any:
    """``resend.Emails.send`` (the SDK's typed dicts are too narrow for the test's plain dicts)."""
    return resend.Emails.send(cast(Any, email), options=cast(Any, options) or None)


def send_batch(emails: list[dict[str, Any]], **options: str) -> Any:
    """``resend.Batch.send``."""
    return resend.Batch.send(cast(Any, emails), options=cast(Any, options) or None)


def get(email_id: str) -> dict[str, Any]:
    """``resend.Emails.get`` as a plain dict (its typed dict leaves out fields the API returns)."""
    return dict(resend.Emails.get(email_id))


def refusal(call: Any, *args: Any, **kwargs: Any) -> ResendError:
    """The SDK's error for ``call(*args)``, which must fail."""
    with pytest.raises(ResendError) as caught:
        call(*args, **kwargs)
    return caught.value


def verified(sink: WebhookSink, email_id: str, count: int) -> list[dict[str, Any]]:
    """The first ``count`` webhooks of email ``email_id``, each verified by the SDK's verifier, in order.

    Webhooks of an earlier test's emails may still arrive: they are left aside.
    """
    for _ in range(2000):
        with sink.lock:
            received = [(headers, body) for headers, body in sink.received if email_id.encode() in body]
        if len(received) >= count:
            break
        time.sleep(0.01)
    assert len(received) == count
    events = []
    for headers, body in received:
        options: resend.VerifyWebhookOptions = {
            "payload": body.decode(),
            "headers": {
                "id": headers["svix-id"],
                "timestamp": headers["svix-timestamp"],
                "signature": headers["svix-signature"],
            },
            "webhook_secret": SANDBOX_WEBHOOK_SECRET,
        }
        event: dict[str, Any] = dict(resend.Webhooks.verify(options))
        assert event["data"]["email_id"] == email_id
        events.append(event)
    return sorted(events, key=lambda event: event["created_at"])


# --- sending ---------------------------------------------------------------------------------------


def test_sdk_send_returns_an_id_that_emails_get_reads(sandbox: SandboxHandle) -> None:
    sent = send(EMAIL)
    email = get(sent["id"])
    assert (email["object"], email["id"], email["to"]) == ("email", sent["id"], ["delivered@resend.dev"])
    assert email["tags"] == [{"name": "task_id", "value": "t-1"}]
    assert email["scheduled_at"] is None
    assert email["last_event"] in {"queued", "sent", "delivered"}


def test_sdk_batch_send_returns_one_id_per_email_in_order(sandbox: SandboxHandle) -> None:
    emails = [{**EMAIL, "to": [f"delivered+{index}@resend.dev"]} for index in range(3)]
    answer = send_batch(emails)
    recipients = {email["id"]: email["to"] for email in sandbox.emails()}
    assert [recipients[item["id"]] for item in answer["data"]] == [email["to"] for email in emails]


def test_sdk_permissive_batch_sends_the_valid_emails_and_lists_the_others(sandbox: SandboxHandle) -> None:
    emails = [EMAIL, {**EMAIL, "from": "nobody"}, EMAIL]
    answer = send_batch(emails, batch_validation="permissive")
    assert len(answer["data"]) == 2
    assert [error["index"] for error in answer["errors"]] == [1]
    assert "`from`" in answer["errors"][0]["message"]


def test_sdk_strict_batch_with_an_invalid_email_raises_a_400_validation_error(sandbox: SandboxHandle) -> None:
    error = refusal(send_batch, [EMAIL, {**EMAIL, "from": "nobody"}])
    assert (str(error.code), error.error_type) == ("400", "validation_error")
    assert sandbox.emails() == []


# --- refusals: validation, idempotency, keys, limits ------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"from": "nobody"},
        {"to": [f"u{index}@example.com" for index in range(51)]},
        {"tags": [{"name": "a b", "value": "v"}]},
        {"headers": {"X-Count": 1}},
        {"template": {"id": "welcome"}},
    ],
    ids=["from", "too-many-recipients", "tags", "headers", "template-with-html"],
)
def test_sdk_sees_validation_errors_as_400(sandbox: SandboxHandle, change: dict[str, Any]) -> None:
    error = refusal(send, {**EMAIL, **change})
    assert (str(error.code), error.error_type) == ("400", "validation_error")
    assert isinstance(error, resend.exceptions.ValidationError)


def test_sdk_sees_a_missing_field_as_422(sandbox: SandboxHandle) -> None:
    error = refusal(send, {key: value for key, value in EMAIL.items() if key != "subject"})
    assert (str(error.code), error.error_type) == ("422", "missing_required_field")
    assert isinstance(error, resend.exceptions.MissingRequiredFieldsError)


def test_sdk_idempotent_replay_returns_the_first_id_and_sends_once(sandbox: SandboxHandle) -> None:
    first = send(EMAIL, idempotency_key="contract/1")
    again = send(EMAIL, idempotency_key="contract/1")
    assert again["id"] == first["id"]
    assert [email["accept_count"] for email in sandbox.emails()] == [1]


def test_sdk_batch_replay_returns_the_same_ids(sandbox: SandboxHandle) -> None:
    emails = [EMAIL, {**EMAIL, "to": ["delivered+2@resend.dev"]}]
    first = send_batch(emails, idempotency_key="batch/1")
    again = send_batch(emails, idempotency_key="batch/1")
    assert again["data"] == first["data"]
    assert len(sandbox.emails()) == 2


def test_sdk_idempotency_key_reused_with_other_content_is_a_409(sandbox: SandboxHandle) -> None:
    send(EMAIL, idempotency_key="contract/2")
    changed = {**EMAIL, "subject": "Changed"}
    error = refusal(send, changed, idempotency_key="contract/2")
    assert (str(error.code), error.error_type) == ("409", "invalid_idempotent_request")


def test_sdk_idempotency_key_in_flight_is_a_409_concurrent_request(sandbox: SandboxHandle) -> None:
    sandbox.configure(stall_rate=1.0, stall_seconds=2.0)
    stalled = threading.Thread(target=send, args=(EMAIL,), kwargs={"idempotency_key": "contract/3"})
    stalled.start()
    try:
        sandbox_waits_for(sandbox, "stalled")
        error = refusal(send, EMAIL, idempotency_key="contract/3")
        assert (str(error.code), error.error_type) == ("409", "concurrent_idempotent_requests")
    finally:
        stalled.join()


def sandbox_waits_for(sandbox: SandboxHandle, counter: str) -> None:
    """Return once the sandbox has counted ``counter`` (a stalled request holds its key by then)."""
    for _ in range(2000):
        if sandbox.stats()["counts"].get(counter):
            return
        time.sleep(0.01)
    raise AssertionError(f"the sandbox never counted {counter}")


@pytest.mark.parametrize(
    ("key", "status", "name"),
    [("", "401", "missing_api_key"), ("sk_not_resend", "403", "invalid_api_key")],
)
def test_sdk_sees_key_refusals_as_resend_answers_them(
    sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch, key: str, status: str, name: str
) -> None:
    monkeypatch.setattr(resend, "api_key", key)
    error = refusal(send, EMAIL)
    assert (str(error.code), error.error_type) == (status, name)


def test_sdk_sending_only_key_is_restricted_on_domains(
    sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resend, "api_key", "re_sendonly_contract")
    assert send(EMAIL)["id"]
    error = refusal(resend.Domains.list)
    assert (str(error.code), error.error_type) == ("401", "restricted_api_key")


def test_sdk_domains_list_shows_a_verified_domain(sandbox: SandboxHandle) -> None:
    domains = resend.Domains.list()
    assert domains["object"] == "list"
    assert domains["data"][0]["status"] == "verified"


def test_sdk_sees_the_rate_limit_headers_and_the_429(sandbox: SandboxHandle) -> None:
    # 0.01/s is one request per 100 s window: the second request is refused however slow the machine.
    sandbox.configure(rate_limit_per_second=0.01)
    answer = send(EMAIL)
    assert answer["http_headers"]["ratelimit-limit"] == "1"
    error = refusal(send, EMAIL)
    assert (str(error.code), error.error_type) == ("429", "rate_limit_exceeded")
    assert isinstance(error, resend.exceptions.RateLimitError)
    assert int((error.headers or {})["retry-after"]) >= 1


def test_sdk_sees_the_daily_quota_as_a_429(sandbox: SandboxHandle) -> None:
    sandbox.configure(daily_quota=1)
    send(EMAIL)
    error = refusal(send, EMAIL)
    assert (str(error.code), error.error_type) == ("429", "daily_quota_exceeded")


# --- scheduling --------------------------------------------------------------------------------------


def test_sdk_scheduled_email_is_held_then_canceled(sandbox: SandboxHandle, sink: WebhookSink) -> None:
    sent = send({**EMAIL, "scheduled_at": "in 1 hour"})
    [scheduled] = verified(sink, sent["id"], 1)
    assert (scheduled["type"], scheduled["data"]["email_id"]) == ("email.scheduled", sent["id"])
    held = get(sent["id"])
    assert held["last_event"] == "scheduled" and held["scheduled_at"]
    assert resend.Emails.cancel(sent["id"])["id"] == sent["id"]
    assert get(sent["id"])["last_event"] == "canceled"


def test_sdk_update_moves_a_scheduled_email(sandbox: SandboxHandle) -> None:
    sent = send({**EMAIL, "scheduled_at": "in 1 hour"})
    before = get(sent["id"])["scheduled_at"]
    updated = resend.Emails.update({"id": sent["id"], "scheduled_at": "in 2 hours"})
    assert (updated["object"], updated["id"]) == ("email", sent["id"])
    after = get(sent["id"])
    assert after["last_event"] == "scheduled" and after["scheduled_at"] > before


# --- webhooks ----------------------------------------------------------------------------------------


def test_sdk_verifier_accepts_every_sandbox_webhook(sandbox: SandboxHandle, sink: WebhookSink) -> None:
    sent = send({**EMAIL, "to": ["Ann <complained@resend.dev>"]})
    events = verified(sink, sent["id"], 3)
    assert [event["type"] for event in events] == ["email.sent", "email.delivered", "email.complained"]
    assert {event["data"]["email_id"] for event in events} == {sent["id"]}
    assert all(event["data"]["to"] == ["Ann <complained@resend.dev>"] for event in events)
    assert events[0]["data"]["tags"] == {"task_id": "t-1"}


def test_sdk_verifier_refuses_a_sandbox_webhook_altered_in_transit(
    sandbox: SandboxHandle, sink: WebhookSink
) -> None:
    sent = send({**EMAIL, "to": ["suppressed@resend.dev"]})
    verified(sink, sent["id"], 1)
    [(headers, body)] = [(headers, body) for headers, body in sink.received if sent["id"].encode() in body]
    altered = json.dumps({**json.loads(body), "type": "email.delivered"})
    options: resend.VerifyWebhookOptions = {
        "payload": altered,
        "headers": {
            "id": headers["svix-id"],
            "timestamp": headers["svix-timestamp"],
            "signature": headers["svix-signature"],
        },
        "webhook_secret": SANDBOX_WEBHOOK_SECRET,
    }
    with pytest.raises(ValueError, match="no matching signature"):
        resend.Webhooks.verify(options)
