"""Webhooks the sandbox sends: Resend's payload shape, Svix signatures, retries, duplicates, shuffling."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import standardwebhooks

from sandbox.config import SandboxConfig
from sandbox.service import Sandbox
from sandbox.webhooks import ATTEMPT_DELAYS, WebhookDispatcher, retry_delay
from shared.webhook_signature import verify

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY = "re_test"
EMAIL = {
    "from": "Acme <onboarding@resend.dev>",
    "to": "complained+w@resend.dev",
    "subject": "Hello",
    "tags": [{"name": "task_id", "value": "t-1"}, {"name": "message_id", "value": "m-1"}],
    "headers": {"X-Task-ID": "t-1"},
}


@dataclass
class Receiver:
    """Records every webhook request; answers with ``statuses`` in turn (then 200)."""

    statuses: list[int] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            status = self.statuses.pop(0) if self.statuses else 200
        if status == 0:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(status)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def make_sandbox(receiver: Receiver) -> Iterator[Callable[..., Sandbox]]:
    made: list[Sandbox] = []

    def make(**switches: Any) -> Sandbox:
        defaults = {
            "webhook_url": "http://receiver.test/hook",
            "webhook_secret": SECRET,
            "webhook_time_scale": 0.0,
        }
        state = Sandbox(SandboxConfig(**{**defaults, "seed": 5, "rate_limit_per_second": 0.0, **switches}))
        http = httpx.Client(transport=httpx.MockTransport(receiver))
        state.webhooks = WebhookDispatcher(
            config=lambda: state.config, stats=state.stats, rng=state.rng, http=http
        )
        made.append(state)
        return state

    yield make
    for state in made:
        state.close()


def send_and_wait(state: Sandbox, email: dict[str, Any] = EMAIL) -> str:
    email_id: str = state.send_email(KEY, None, email).body["id"]
    assert state.webhooks.wait_idle(10)
    return email_id


def test_every_event_is_delivered_in_resend_shape(
    make_sandbox: Callable[..., Sandbox], receiver: Receiver
) -> None:
    email_id = send_and_wait(make_sandbox())
    bodies = sorted(receiver.bodies(), key=lambda b: b["created_at"])
    assert [b["type"] for b in bodies] == ["email.sent", "email.delivered", "email.complained"]
    data = bodies[0]["data"]
    assert data["email_id"] == email_id
    assert data["to"] == ["complained+w@resend.dev"]
    assert data["from"] == "Acme <onboarding@resend.dev>"
    assert data["subject"] == "Hello"
    assert data["tags"] == {"task_id": "t-1", "message_id": "m-1"}
    assert data["headers"] == [{"name": "X-Task-ID", "value": "t-1"}]
    assert bodies[0]["created_at"].endswith("Z")


def test_event_created_at_increases_along_the_sequence(
    make_sandbox: Callable[..., Sandbox], receiver: Receiver
) -> None:
    send_and_wait(make_sandbox(webhook_threads=1))
    stamps = [b["created_at"] for b in receiver.bodies()]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


def test_webhooks_verify_with_our_verifier_and_standardwebhooks(
    make_sandbox: Callable[..., Sandbox], receiver: Receiver
) -> None:
    send_and_wait(make_sandbox())
    for request in receiver.requests:
        headers = dict(request.headers)
        assert verify(request.content, headers, [SECRET]) == headers["svix-id"]
        unbranded = {k.replace("svix-", "webhook-"): v for k, v in headers.items() if k.startswith("svix-")}
        standardwebhooks.Webhook(SECRET).verify(request.content, unbranded, json_parse=False)


def test_svix_ids_are_unique_per_event(make_sandbox: Callable[..., Sandbox], receiver: Receiver) -> None:
    send_and_wait(make_sandbox())
    ids = [r.headers["svix-id"] for r in receiver.requests]
    assert len(set(ids)) == 3
    assert all(i.startswith("msg_") for i in ids)


def test_bounce_event_carries_bounce_type(make_sandbox: Callable[..., Sandbox], receiver: Receiver) -> None:
    send_and_wait(make_sandbox(), {**EMAIL, "to": "bounced@resend.dev"})
    bounced = next(b for b in receiver.bodies() if b["type"] == "email.bounced")
    assert bounced["data"]["bounce"]["type"] == "Permanent"
    assert "subType" in bounced["data"]["bounce"]


def test_one_event_per_email_names_its_whole_to_list(
    make_sandbox: Callable[..., Sandbox], receiver: Receiver
) -> None:
    to = ["Ann <delivered@resend.dev>", "bounced@resend.dev"]
    send_and_wait(make_sandbox(), {**EMAIL, "to": to})
    bodies = sorted(receiver.bodies(), key=lambda b: b["created_at"])
    assert [b["type"] for b in bodies] == ["email.sent", "email.delivered", "email.bounced"]
    assert all(b["data"]["to"] == to for b in bodies)


def test_a_cc_recipient_outcome_is_an_event_of_the_email(
    make_sandbox: Callable[..., Sandbox], receiver: Receiver
) -> None:
    send_and_wait(make_sandbox(), {**EMAIL, "to": "delivered@resend.dev", "cc": ["complained@resend.dev"]})
    bodies = sorted(receiver.bodies(), key=lambda b: b["created_at"])
    assert [b["type"] for b in bodies] == ["email.sent", "email.delivered", "email.complained"]
    assert all(b["data"]["to"] == ["delivered@resend.dev"] for b in bodies)


def test_scheduled_email_fires_email_scheduled_at_once_and_delivers_at_its_time(
    make_sandbox: Callable[..., Sandbox], receiver: Receiver
) -> None:
    state = make_sandbox(webhook_threads=1)
    scheduled_at = datetime.now(UTC) + timedelta(seconds=0.5)
    email = {**EMAIL, "to": "delivered@resend.dev", "scheduled_at": scheduled_at.isoformat()}
    send_and_wait(state, email)
    bodies = receiver.bodies()
    assert [b["type"] for b in bodies] == ["email.scheduled", "email.sent", "email.delivered"]
    sent_at = datetime.fromisoformat(bodies[1]["created_at"])
    assert sent_at >= scheduled_at.replace(microsecond=scheduled_at.microsecond // 1000 * 1000)


def test_canceled_scheduled_email_sends_only_email_scheduled(
    make_sandbox: Callable[..., Sandbox], receiver: Receiver
) -> None:
    state = make_sandbox()
    email_id = state.send_email(KEY, None, {**EMAIL, "scheduled_at": "in 1 hour"}).body["id"]
    state.cancel(email_id)
    assert state.webhooks.wait_idle(10)
    assert [b["type"] for b in receiver.bodies()] == ["email.scheduled"]
    assert state.webhooks.pending() == 0


def test_rescheduled_email_delivers_at_the_new_time_only(
    make_sandbox: Callable[..., Sandbox], receiver: Receiver
) -> None:
    state = make_sandbox()
    email_id = state.send_email(KEY, None, {**EMAIL, "scheduled_at": "in 1 hour"}).body["id"]
    state.reschedule(email_id, {"scheduled_at": datetime.now(UTC).isoformat()})
    assert state.webhooks.wait_idle(10)
    types = [b["type"] for b in receiver.bodies()]
    assert sorted(types) == sorted(["email.scheduled", "email.sent", "email.delivered", "email.complained"])


def test_non_2xx_is_retried_with_the_same_svix_id(
    make_sandbox: Callable[..., Sandbox], receiver: Receiver
) -> None:
    receiver.statuses.extend([500, 302, 0])
    state = make_sandbox(webhook_threads=1)
    send_and_wait(state, {**EMAIL, "to": "suppressed@resend.dev"})
    assert len(receiver.requests) == 4
    assert len({r.headers["svix-id"] for r in receiver.requests}) == 1
    counts = state.stats.snapshot()["counts"]
    assert counts["webhook_attempts_failed"] == 3
    assert counts["webhooks_sent"] == 1


def test_delivery_gives_up_after_resend_schedule(
    make_sandbox: Callable[..., Sandbox], receiver: Receiver
) -> None:
    receiver.statuses.extend([503] * 20)
    state = make_sandbox()
    send_and_wait(state, {**EMAIL, "to": "suppressed@resend.dev"})
    assert len(receiver.requests) == len(ATTEMPT_DELAYS) == 8
    assert state.stats.snapshot()["counts"]["webhooks_failed"] == 1


def test_retry_delays_follow_resend_times_the_scale() -> None:
    assert [retry_delay(n, 1.0) for n in range(1, 8)] == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert retry_delay(2, 0.001) == pytest.approx(0.3)
    assert retry_delay(8, 1.0) is None
    assert sum(ATTEMPT_DELAYS) / 3600 == pytest.approx(27.6, abs=0.05)


def test_duplicate_switch_delivers_each_event_twice(
    make_sandbox: Callable[..., Sandbox], receiver: Receiver
) -> None:
    send_and_wait(make_sandbox(duplicate_webhooks=1.0))
    ids = [r.headers["svix-id"] for r in receiver.requests]
    assert len(ids) == 6
    assert all(ids.count(i) == 2 for i in ids)


def test_shuffle_switch_delivers_out_of_order(
    make_sandbox: Callable[..., Sandbox], receiver: Receiver
) -> None:
    state = make_sandbox(shuffle_webhooks=True, webhook_threads=1, webhook_event_spacing=0.0)
    for _ in range(10):
        state.send_email(KEY, None, EMAIL)
    assert state.webhooks.wait_idle(10)
    by_email: dict[str, list[str]] = {}
    for body in receiver.bodies():
        by_email.setdefault(body["data"]["email_id"], []).append(body["created_at"])
    assert any(stamps != sorted(stamps) for stamps in by_email.values())


def test_without_webhook_url_nothing_is_scheduled(
    make_sandbox: Callable[..., Sandbox], receiver: Receiver
) -> None:
    state = make_sandbox(webhook_url=None)
    send_and_wait(state)
    assert receiver.requests == []
    assert state.webhooks.pending() == 0


def test_webhook_url_removed_at_run_time_leaves_events_unsent(
    make_sandbox: Callable[..., Sandbox], receiver: Receiver
) -> None:
    state = make_sandbox(webhook_event_spacing=0.2)
    state.send_email(KEY, None, EMAIL)
    state.reconfigure({"webhook_url": None})
    assert state.webhooks.wait_idle(10)
    assert len(receiver.requests) < 3
    assert state.stats.snapshot()["counts"]["webhooks_unsent"] >= 1
