"""The sandbox's Resend API surface through Flask's test client: auth, sends, reads, faults, inspection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sandbox.api_errors import ConnectionDropped
from sandbox.app import create_app
from sandbox.config import SandboxConfig
from sandbox.rate_limit import RateLimiter
from sandbox.service import Sandbox

KEY = "re_test_key"
AUTH = {"Authorization": f"Bearer {KEY}"}
EMAIL = {"from": "Acme <onboarding@resend.dev>", "to": "delivered@resend.dev", "subject": "Hello"}


def make_client(**switches: Any) -> tuple[FlaskClient, Sandbox]:
    app = create_app(SandboxConfig(**{"rate_limit_per_second": 0.0, "seed": 7, **switches}))
    app.testing = True  # let ConnectionDropped reach the test instead of becoming a 500
    return app.test_client(), app.extensions["sandbox"]


@pytest.fixture
def app() -> Iterator[Flask]:
    app = create_app(SandboxConfig(rate_limit_per_second=0.0, seed=7))
    yield app
    app.extensions["sandbox"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def state(app: Flask) -> Sandbox:
    return app.extensions["sandbox"]


def send(client: FlaskClient, body: Any = None, **headers: str) -> Any:
    return client.post("/emails", json=EMAIL if body is None else body, headers={**AUTH, **headers})


# --- auth ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "name"),
    [
        ({}, 401, "missing_api_key"),
        ({"Authorization": "Bearer "}, 401, "missing_api_key"),
        ({"Authorization": "Basic re_abc"}, 401, "missing_api_key"),
        ({"Authorization": "Bearer sk_live_abc"}, 403, "invalid_api_key"),
        ({"Authorization": "Bearer re_"}, 403, "invalid_api_key"),
    ],
)
def test_send_without_a_usable_key_is_refused_as_resend_does(
    client: FlaskClient, headers: dict[str, str], status: int, name: str
) -> None:
    response = client.post("/emails", json=EMAIL, headers=headers)
    assert response.status_code == status
    assert response.get_json() == {
        "statusCode": status,
        "name": name,
        "message": response.get_json()["message"],
    }


def test_error_message_never_contains_the_key(client: FlaskClient) -> None:
    response = client.post("/emails", json=EMAIL, headers={"Authorization": "Bearer sk_secret_value"})
    assert "sk_secret_value" not in response.get_data(as_text=True)


def test_configured_keys_replace_the_re_prefix_rule() -> None:
    client, _ = make_client(api_keys=frozenset({"re_only_this"}))
    assert client.post("/emails", json=EMAIL, headers={"Authorization": "Bearer re_other"}).status_code == 403
    assert (
        client.post("/emails", json=EMAIL, headers={"Authorization": "Bearer re_only_this"}).status_code
        == 200
    )


def test_sending_only_key_may_send(client: FlaskClient) -> None:
    response = client.post("/emails", json=EMAIL, headers={"Authorization": "Bearer re_sendonly_x"})
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/domains", "/emails/0f1c3f0e-0000-4000-8000-000000000000"])
def test_sending_only_key_is_restricted_elsewhere(client: FlaskClient, path: str) -> None:
    response = client.get(path, headers={"Authorization": "Bearer re_sendonly_x"})
    assert response.status_code == 401
    assert response.get_json()["name"] == "restricted_api_key"


def test_domains_lists_a_verified_domain_for_a_full_key(client: FlaskClient) -> None:
    body = client.get("/domains", headers=AUTH).get_json()
    assert body["object"] == "list"
    assert body["data"][0]["status"] == "verified"


# --- POST /emails and GET /emails/{id} -------------------------------------------------------------


def test_send_returns_an_id_and_records_the_email(client: FlaskClient, state: Sandbox) -> None:
    response = send(
        client, {**EMAIL, "tags": [{"name": "task_id", "value": "t-1"}], "headers": {"X-Task-ID": "t"}}
    )
    assert response.status_code == 200
    email_id = response.get_json()["id"]
    listed = state.emails.listing()
    assert [e["id"] for e in listed] == [email_id]
    assert listed[0]["tags"] == [{"name": "task_id", "value": "t-1"}]
    assert listed[0]["headers"] == {"X-Task-ID": "t"}


def test_get_email_returns_resend_shape(client: FlaskClient) -> None:
    email_id = send(client, {**EMAIL, "tags": [{"name": "a", "value": "b"}]}).get_json()["id"]
    body = client.get(f"/emails/{email_id}", headers=AUTH).get_json()
    assert body["object"] == "email"
    assert body["id"] == email_id
    assert body["to"] == ["delivered@resend.dev"]
    assert body["tags"] == [{"name": "a", "value": "b"}]
    assert body["created_at"].endswith("+00")
    assert body["last_event"] in {"queued", "sent", "delivered"}


def test_get_unknown_email_is_404_not_found(client: FlaskClient) -> None:
    response = client.get("/emails/9e2b2c8c-0000-4000-8000-000000000000", headers=AUTH)
    assert response.status_code == 404
    assert response.get_json()["name"] == "not_found"


def test_invalid_json_body_is_a_validation_error(client: FlaskClient) -> None:
    response = client.post("/emails", data=b"{not json", headers=AUTH)
    assert response.status_code == 400
    assert response.get_json()["name"] == "validation_error"


def test_unknown_endpoint_answers_resend_not_found(client: FlaskClient) -> None:
    response = client.get("/nothing", headers=AUTH)
    assert response.status_code == 404
    assert response.get_json()["name"] == "not_found"


def test_wrong_method_answers_method_not_allowed(client: FlaskClient) -> None:
    response = client.delete("/emails", headers=AUTH)
    assert response.status_code == 405
    assert response.get_json()["name"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({**EMAIL, "from": "nobody"}, "`from`"),
        ({**EMAIL, "to": [f"u{i}@example.com" for i in range(51)]}, "recipients"),
        ({**EMAIL, "tags": [{"name": "a b", "value": "v"}]}, "`tags`"),
        ({**EMAIL, "headers": {"X-Count": 1}}, "`headers`"),
        (b"{not json", "JSON"),
    ],
    ids=["from", "too-many-recipients", "tags", "headers", "malformed-json"],
)
def test_validation_error_answers_400_as_resend_documents(
    client: FlaskClient, body: Any, problem: str
) -> None:
    if isinstance(body, bytes):
        response = client.post("/emails", data=body, headers=AUTH)
    else:
        response = send(client, body)
    assert response.status_code == 400
    assert response.get_json()["statusCode"] == 400
    assert response.get_json()["name"] == "validation_error"
    assert problem in response.get_json()["message"]


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ({"from": EMAIL["from"], "to": EMAIL["to"]}, "missing_required_field"),
        ({**EMAIL, "attachments": [{"filename": "a.txt"}]}, "invalid_attachment"),
    ],
)
def test_missing_fields_and_bad_attachments_stay_422(client: FlaskClient, body: Any, name: str) -> None:
    response = send(client, body)
    assert (response.status_code, response.get_json()["name"]) == (422, name)


def test_get_email_with_a_malformed_id_is_422_invalid_parameter(client: FlaskClient) -> None:
    response = client.get("/emails/not-a-uuid", headers=AUTH)
    assert (response.status_code, response.get_json()["name"]) == (422, "invalid_parameter")


@pytest.mark.parametrize("body_field", ["html", "text"])
def test_send_with_template_and_a_body_is_refused(
    client: FlaskClient, state: Sandbox, body_field: str
) -> None:
    response = send(client, {**EMAIL, "template": {"id": "welcome"}, body_field: "Hi"})
    assert (response.status_code, response.get_json()["name"]) == (400, "validation_error")
    assert "`template`" in response.get_json()["message"]
    assert state.emails.listing() == []


def test_send_with_a_template_alone_is_accepted(client: FlaskClient) -> None:
    template_only = {"from": EMAIL["from"], "to": EMAIL["to"], "template": {"id": "welcome"}}
    assert send(client, template_only).status_code == 200


def test_validation_error_carries_the_rate_limit_headers() -> None:
    client, _ = make_client(rate_limit_per_second=2.0)
    response = send(client, {**EMAIL, "from": "nobody"})
    assert response.status_code == 400
    assert response.headers["ratelimit-limit"] == "2"


# --- scheduled_at, POST /emails/{id}/cancel, PATCH /emails/{id} --------------------------------------

#: 2026-11-01T12:00:00Z.
T0 = 1793534400.0


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def scheduled_client() -> tuple[FlaskClient, FakeClock]:
    """A sandbox whose clock the test moves (no webhook URL: the timeline alone tells what happened)."""
    clock = FakeClock()
    app = create_app()
    app.extensions["sandbox"] = Sandbox(SandboxConfig(rate_limit_per_second=0.0, seed=7), clock=clock)
    return app.test_client(), clock


def last_event(client: FlaskClient, email_id: str) -> str:
    body: dict[str, Any] = client.get(f"/emails/{email_id}", headers=AUTH).get_json()
    return str(body["last_event"])


def send_scheduled(client: FlaskClient, scheduled_at: str = "in 1 min") -> str:
    response = send(client, {**EMAIL, "scheduled_at": scheduled_at})
    assert response.status_code == 200
    email_id: str = response.get_json()["id"]
    return email_id


def test_scheduled_email_is_held_until_its_time() -> None:
    client, clock = scheduled_client()
    email_id = send_scheduled(client, "2026-11-01T12:01:00.000Z")
    clock.now += 1
    body = client.get(f"/emails/{email_id}", headers=AUTH).get_json()
    assert (body["last_event"], body["scheduled_at"]) == ("scheduled", "2026-11-01 12:01:00.000000+00")
    clock.now = T0 + 59
    assert last_event(client, email_id) == "scheduled"
    clock.now = T0 + 61
    assert last_event(client, email_id) == "delivered"


def test_email_scheduled_in_the_past_is_sent_at_once() -> None:
    client, clock = scheduled_client()
    email_id = send_scheduled(client, "2026-11-01T11:00:00Z")
    clock.now += 1
    body = client.get(f"/emails/{email_id}", headers=AUTH).get_json()
    assert (body["last_event"], body["scheduled_at"]) == ("delivered", None)


def test_scheduling_more_than_30_days_ahead_is_refused() -> None:
    client, _ = scheduled_client()
    response = send(client, {**EMAIL, "scheduled_at": "in 31 days"})
    assert (response.status_code, response.get_json()["name"]) == (400, "validation_error")


def test_batch_items_are_scheduled_one_by_one() -> None:
    client, clock = scheduled_client()
    items = [{**EMAIL, "scheduled_at": "in 1 min"}, EMAIL]
    later, now = (d["id"] for d in client.post("/emails/batch", json=items, headers=AUTH).get_json()["data"])
    clock.now += 1
    assert (last_event(client, later), last_event(client, now)) == ("scheduled", "delivered")


def test_cancel_keeps_a_scheduled_email_from_being_sent() -> None:
    client, clock = scheduled_client()
    email_id = send_scheduled(client)
    clock.now += 1
    response = client.post(f"/emails/{email_id}/cancel", headers=AUTH)
    assert (response.status_code, response.get_json()) == (200, {"object": "email", "id": email_id})
    clock.now = T0 + 3600
    assert last_event(client, email_id) == "canceled"


def test_update_moves_the_send_time_of_a_scheduled_email() -> None:
    client, clock = scheduled_client()
    email_id = send_scheduled(client, "in 1 min")
    response = client.patch(f"/emails/{email_id}", json={"scheduled_at": "in 5 min"}, headers=AUTH)
    assert (response.status_code, response.get_json()) == (200, {"object": "email", "id": email_id})
    clock.now = T0 + 120
    body = client.get(f"/emails/{email_id}", headers=AUTH).get_json()
    assert (body["last_event"], body["scheduled_at"]) == ("scheduled", "2026-11-01 12:05:00.000000+00")
    clock.now = T0 + 301
    assert last_event(client, email_id) == "delivered"


def test_update_without_scheduled_at_is_a_missing_field() -> None:
    client, _ = scheduled_client()
    email_id = send_scheduled(client)
    response = client.patch(f"/emails/{email_id}", json={}, headers=AUTH)
    assert (response.status_code, response.get_json()["name"]) == (422, "missing_required_field")


@pytest.mark.parametrize("action", ["cancel", "update"])
def test_an_email_already_sent_can_be_neither_canceled_nor_updated(action: str) -> None:
    client, clock = scheduled_client()
    email_id = send_scheduled(client, "in 1 min")
    clock.now = T0 + 61
    if action == "cancel":
        response = client.post(f"/emails/{email_id}/cancel", headers=AUTH)
    else:
        response = client.patch(f"/emails/{email_id}", json={"scheduled_at": "in 1 min"}, headers=AUTH)
    assert (response.status_code, response.get_json()["name"]) == (400, "validation_error")
    assert last_event(client, email_id) == "delivered"


def test_cancel_of_an_unscheduled_email_is_refused(client: FlaskClient) -> None:
    email_id = send(client).get_json()["id"]
    response = client.post(f"/emails/{email_id}/cancel", headers=AUTH)
    assert (response.status_code, response.get_json()["name"]) == (400, "validation_error")


@pytest.mark.parametrize(
    ("email_id", "status", "name"),
    [("9e2b2c8c-0000-4000-8000-000000000000", 404, "not_found"), ("nope", 422, "invalid_parameter")],
)
def test_cancel_of_an_unknown_or_malformed_id_is_refused(
    client: FlaskClient, email_id: str, status: int, name: str
) -> None:
    response = client.post(f"/emails/{email_id}/cancel", headers=AUTH)
    assert (response.status_code, response.get_json()["name"]) == (status, name)


# --- POST /emails/batch ----------------------------------------------------------------------------

BAD_ITEM = {"from": "onboarding@resend.dev", "to": "not-an-address", "subject": "x"}


def test_batch_returns_one_id_per_item_in_order(client: FlaskClient, state: Sandbox) -> None:
    items = [{**EMAIL, "to": f"delivered+{i}@resend.dev"} for i in range(3)]
    body = client.post("/emails/batch", json=items, headers=AUTH).get_json()
    assert list(body) == ["data"]
    by_id = {e["id"]: e["to"] for e in state.emails.listing()}
    assert [by_id[d["id"]] for d in body["data"]] == [[item["to"]] for item in items]


def test_strict_batch_rejects_everything_on_one_bad_item(client: FlaskClient, state: Sandbox) -> None:
    response = client.post("/emails/batch", json=[EMAIL, BAD_ITEM], headers=AUTH)
    assert response.status_code == 400
    assert response.get_json()["name"] == "validation_error"
    assert state.emails.listing() == []


def test_permissive_batch_sends_valid_items_and_lists_errors(client: FlaskClient, state: Sandbox) -> None:
    response = client.post(
        "/emails/batch",
        json=[BAD_ITEM, EMAIL, BAD_ITEM],
        headers={**AUTH, "x-batch-validation": "permissive"},
    )
    body = response.get_json()
    assert response.status_code == 200
    assert len(body["data"]) == 1
    assert [error["index"] for error in body["errors"]] == [0, 2]
    assert len(state.emails.listing()) == 1


def test_batch_with_unknown_validation_mode_is_refused(client: FlaskClient) -> None:
    response = client.post("/emails/batch", json=[EMAIL], headers={**AUTH, "x-batch-validation": "lenient"})
    assert response.status_code == 400


@pytest.mark.parametrize("size", [0, 101])
def test_batch_size_must_be_1_to_100(client: FlaskClient, size: int) -> None:
    response = client.post("/emails/batch", json=[EMAIL] * size, headers=AUTH)
    assert response.status_code == 400


def test_batch_of_100_is_accepted(client: FlaskClient) -> None:
    assert len(client.post("/emails/batch", json=[EMAIL] * 100, headers=AUTH).get_json()["data"]) == 100


def test_batch_refuses_attachments(client: FlaskClient) -> None:
    item = {**EMAIL, "attachments": [{"content": "aGk=", "filename": "a.txt"}]}
    response = client.post("/emails/batch", json=[item], headers=AUTH)
    assert response.status_code == 400
    assert "ttachments" in response.get_json()["message"]


# --- idempotency -----------------------------------------------------------------------------------


def test_same_key_and_payload_replays_the_first_answer_and_sends_nothing(
    client: FlaskClient, state: Sandbox
) -> None:
    first = send(client, **{"Idempotency-Key": "k-1"}).get_json()
    second = send(client, **{"Idempotency-Key": "k-1"}).get_json()
    assert first == second
    assert len(state.emails.listing()) == 1
    assert state.stats.snapshot()["counts"]["idempotent_replays"] == 1


def test_same_key_with_different_payload_is_409_invalid_idempotent_request(client: FlaskClient) -> None:
    send(client, **{"Idempotency-Key": "k-2"})
    response = send(client, {**EMAIL, "subject": "Changed"}, **{"Idempotency-Key": "k-2"})
    assert response.status_code == 409
    assert response.get_json()["name"] == "invalid_idempotent_request"


def test_same_key_while_in_flight_is_409_concurrent(client: FlaskClient, state: Sandbox) -> None:
    # Given a request holding the key (claimed, not completed)
    state.idempotency.claim((KEY, "/emails", "k-3"), "whatever")
    # When another request uses it
    response = send(client, **{"Idempotency-Key": "k-3"})
    # Then
    assert response.status_code == 409
    assert response.get_json()["name"] == "concurrent_idempotent_requests"


def test_idempotency_keys_are_kept_per_api_key(client: FlaskClient, state: Sandbox) -> None:
    send(client, **{"Idempotency-Key": "k-4"})
    client.post("/emails", json=EMAIL, headers={"Authorization": "Bearer re_other", "Idempotency-Key": "k-4"})
    assert len(state.emails.listing()) == 2


def test_idempotency_keys_are_kept_per_endpoint(client: FlaskClient, state: Sandbox) -> None:
    send(client, **{"Idempotency-Key": "k-5"})
    client.post("/emails/batch", json=[EMAIL], headers={**AUTH, "Idempotency-Key": "k-5"})
    assert len(state.emails.listing()) == 2


def test_batch_replay_returns_the_same_ids(client: FlaskClient, state: Sandbox) -> None:
    headers = {**AUTH, "Idempotency-Key": "batch-1"}
    first = client.post("/emails/batch", json=[EMAIL, EMAIL], headers=headers).get_json()
    assert client.post("/emails/batch", json=[EMAIL, EMAIL], headers=headers).get_json() == first
    assert len(state.emails.listing()) == 2


@pytest.mark.parametrize("key", ["", "k" * 257])
def test_idempotency_key_outside_1_to_256_chars_is_400(client: FlaskClient, key: str) -> None:
    response = send(client, **{"Idempotency-Key": key})
    assert response.status_code == 400
    assert response.get_json()["name"] == "invalid_idempotency_key"


def test_idempotency_key_of_256_chars_is_accepted(client: FlaskClient) -> None:
    assert send(client, **{"Idempotency-Key": "k" * 256}).status_code == 200


def test_failed_request_does_not_keep_its_idempotency_key(client: FlaskClient, state: Sandbox) -> None:
    state.reconfigure({"daily_quota": 1})
    send(client, {**EMAIL, "cc": ["a@example.com"]}, **{"Idempotency-Key": "k-6"})  # 2 emails > quota
    assert send(client, **{"Idempotency-Key": "k-6"}).status_code == 200


# --- rate limit and quota --------------------------------------------------------------------------


def test_rate_limit_answers_429_with_resend_headers() -> None:
    client, state = make_client(rate_limit_per_second=2.0)
    state.limiter = RateLimiter(clock=lambda: 100.0)
    answers = [send(client) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["ratelimit-limit"] == "2"
    assert answers[0].headers["ratelimit-remaining"] == "1"
    assert answers[2].get_json()["name"] == "rate_limit_exceeded"
    assert answers[2].headers["retry-after"] == "1"
    assert answers[2].headers["ratelimit-remaining"] == "0"
    assert state.stats.snapshot()["counts"]["rate_limited"] == 1


def test_rate_limit_is_per_api_key() -> None:
    client, state = make_client(rate_limit_per_second=1.0)
    state.limiter = RateLimiter(clock=lambda: 100.0)
    assert send(client).status_code == 200
    other = client.post("/emails", json=EMAIL, headers={"Authorization": "Bearer re_other"})
    assert other.status_code == 200


def test_rate_limit_off_sends_no_ratelimit_headers(client: FlaskClient) -> None:
    assert "ratelimit-limit" not in send(client).headers


def test_daily_quota_answers_429_daily_quota_exceeded() -> None:
    client, state = make_client(daily_quota=2)
    assert send(client, {**EMAIL, "to": ["a@example.com", "b@example.com"]}).status_code == 200
    response = send(client)
    assert response.status_code == 429
    assert response.get_json()["name"] == "daily_quota_exceeded"
    assert len(state.emails.listing()) == 1


# --- faults ----------------------------------------------------------------------------------------


def test_error_rate_answers_500_and_sends_nothing() -> None:
    client, state = make_client(error_rate=1.0)
    response = send(client)
    assert response.status_code == 500
    assert response.get_json()["name"] == "application_error"
    assert state.emails.listing() == []


def test_drop_accepts_the_email_then_gives_no_answer() -> None:
    client, state = make_client(drop_rate=1.0)
    with pytest.raises(ConnectionDropped):
        send(client, **{"Idempotency-Key": "drop-1"})
    assert len(state.emails.listing()) == 1
    assert state.stats.snapshot()["counts"]["dropped_connections"] == 1


def test_retry_after_a_drop_replays_the_recorded_id() -> None:
    client, state = make_client(drop_rate=1.0)
    with pytest.raises(ConnectionDropped):
        send(client, **{"Idempotency-Key": "drop-2"})
    state.reconfigure({"drop_rate": 0.0})
    assert send(client, **{"Idempotency-Key": "drop-2"}).get_json()["id"] == state.emails.listing()[0]["id"]
    assert len(state.emails.listing()) == 1


def test_latency_switch_still_answers() -> None:
    client, _ = make_client(latency=0.01)
    assert send(client).status_code == 200


# --- inspection ------------------------------------------------------------------------------------


def test_inspection_counts_accepts_per_recipient_and_idempotency_key(client: FlaskClient) -> None:
    send(client, **{"Idempotency-Key": "same"})
    # A second API key reusing the key is a distinct send: the pair (recipient, key) is accepted twice.
    client.post(
        "/emails", json=EMAIL, headers={"Authorization": "Bearer re_other", "Idempotency-Key": "same"}
    )
    listed = client.get("/_sandbox/emails").get_json()["data"]
    assert [e["accept_count"] for e in listed] == [2, 2]
    assert listed[0]["idempotency_key"] == "same"


def test_stats_count_requests_per_second(client: FlaskClient) -> None:
    send(client)
    client.get("/domains", headers=AUTH)
    stats = client.get("/_sandbox/stats").get_json()
    assert stats["counts"]["requests"] == 2
    assert stats["counts"]["accepted"] == 1
    assert sum(stats["requests_per_second"].values()) == 2


def test_reset_forgets_everything(client: FlaskClient) -> None:
    send(client, **{"Idempotency-Key": "r"})
    client.post("/_sandbox/reset")
    assert client.get("/_sandbox/emails").get_json()["data"] == []
    assert client.get("/_sandbox/stats").get_json()["counts"].get("requests", 0) == 0
    assert send(client, {**EMAIL, "subject": "other"}, **{"Idempotency-Key": "r"}).status_code == 200


def test_config_switches_change_at_run_time(client: FlaskClient) -> None:
    assert client.post("/_sandbox/config", json={"error_rate": 1.0}).get_json()["error_rate"] == 1.0
    assert send(client).status_code == 500
    client.post("/_sandbox/config", json={"error_rate": 0.0})
    assert send(client).status_code == 200


@pytest.mark.parametrize("switches", [{"port": 1}, {"nonsense": 1}, {"error_rate": 2}, {"latency": -1}])
def test_config_refuses_unknown_fixed_or_invalid_switches(
    client: FlaskClient, switches: dict[str, Any]
) -> None:
    response = client.post("/_sandbox/config", json=switches)
    assert response.status_code == 400


def test_config_view_hides_the_webhook_secret() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    client, _ = make_client(webhook_url="http://127.0.0.1:9/hook", webhook_secret=secret)
    text = client.get("/_sandbox/config").get_data(as_text=True)
    assert secret not in text
    assert '"webhook_secret_set": true' in text
