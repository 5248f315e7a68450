"""ResendClient: requests as Resend expects them, and every answer mapped to our exceptions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from shared import resend_client
from shared.errors import (
    ConfigError,
    PayloadInvalid,
    ResendAuthError,
    ResendError,
    ResendIdempotencyInFlight,
    ResendIdempotencyMismatch,
    ResendQuotaExceeded,
    ResendRateLimited,
    ResendRejected,
    ResendServerError,
    ResendTransportError,
)
from shared.resend_client import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    USER_AGENT,
    BatchItemResult,
    KeyCheck,
    RateLimitInfo,
    ResendClient,
    encode_body,
    make_http_client,
    parse_retry_after,
    process_http_client,
)
from shared.resend_schemas import SendEmailRequest, Tag, check_send_request
from shared.settings import load_settings
from tests.fake_resend import RATE_HEADERS, FakeResend, error_body

API_KEY = "re_test_0123456789abcdef"
NOW = datetime(2026, 3, 1, 22, 0, 0, tzinfo=UTC)


@pytest.fixture
def resend() -> FakeResend:
    return FakeResend()


@pytest.fixture
def client(resend: FakeResend) -> ResendClient:
    return ResendClient(http=resend.client(), api_key=API_KEY, clock=lambda: NOW)


def email(**overrides: Any) -> SendEmailRequest:
    fields: dict[str, Any] = {
        "from": "Acme <news@acme.test>",
        "to": ["delivered@resend.dev"],
        "subject": "Hello",
        "html": "<p>Hi</p>",
    }
    fields.update(overrides)
    return SendEmailRequest.model_validate(fields)


# --- HTTP client factory -------------------------------------------------------------------------


def test_make_http_client_uses_settings_base_url_timeouts_and_user_agent() -> None:
    settings = load_settings(resend_base_url="http://127.0.0.1:9999")
    with make_http_client(settings) as http:
        assert str(http.base_url) == "http://127.0.0.1:9999/"
        assert http.timeout.connect == CONNECT_TIMEOUT == 5.0
        assert http.timeout.read == READ_TIMEOUT == 30.0
        assert http.headers["User-Agent"] == USER_AGENT
        assert USER_AGENT.startswith("marketing-pilot-connectors/")


def test_process_http_client_is_one_pooled_client_per_process() -> None:
    settings = load_settings(resend_base_url="http://127.0.0.1:9998")
    first = process_http_client(settings)
    assert process_http_client(settings) is first
    first.close()
    replacement = process_http_client(settings)
    assert replacement is not first
    replacement.close()


# --- requests ------------------------------------------------------------------------------------


def test_send_email_posts_the_wire_body_with_key_and_idempotency_headers(
    resend: FakeResend, client: ResendClient
) -> None:
    result = client.send_email(email(), idempotency_key="send/org/msg-1")

    request = resend.last
    assert (request.method, request.url.path) == ("POST", "/emails")
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["Idempotency-Key"] == "send/org/msg-1"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == USER_AGENT
    assert resend.last_json() == email().to_wire()
    assert result.email_id == "email-0001"
    assert result.rate_limit == RateLimitInfo(limit=2, remaining=1, reset=1.0)


def test_send_email_sends_a_stored_mapping_byte_identically(resend: FakeResend, client: ResendClient) -> None:
    # Given the body as first sent, and the same body after a JSONB round trip (keys reordered)
    request = email(tags=[Tag(name="task_id", value="t-1")], text="Hi")
    stored = dict(reversed(list(request.to_wire().items())))

    client.send_email(request, idempotency_key="k")
    client.send_email(stored, idempotency_key="k")

    assert resend.requests[0].content == resend.requests[1].content


def test_send_email_sends_a_checked_request_without_validating_it_again(
    resend: FakeResend, client: ResendClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = check_send_request(email().to_wire())

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("validated twice")

    monkeypatch.setattr(resend_client, "parse_send_request", refuse)
    client.send_email(checked, idempotency_key="k")

    assert resend.last_json() == email().to_wire()


def test_encode_body_is_canonical_compact_utf8() -> None:
    assert encode_body({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


def test_send_email_refuses_an_invalid_mapping_before_any_http_call(
    resend: FakeResend, client: ResendClient
) -> None:
    with pytest.raises(PayloadInvalid, match="to"):
        client.send_email({"from": "a@acme.test", "to": [], "subject": "s", "text": "t"}, idempotency_key="k")
    assert resend.requests == []


def test_send_email_refuses_python_field_names_in_a_mapping(client: ResendClient) -> None:
    body = {"from_": "a@acme.test", "to": ["b@acme.test"], "subject": "s", "text": "t"}
    with pytest.raises(PayloadInvalid, match="from_"):
        client.send_email(body, idempotency_key="k")


@pytest.mark.parametrize("key", ["", "x" * 257, "has space", "naïve", "line\nbreak", "trailing\n"])
def test_send_email_refuses_a_bad_idempotency_key(resend: FakeResend, client: ResendClient, key: str) -> None:
    with pytest.raises(PayloadInvalid, match="idempotency_key"):
        client.send_email(email(), idempotency_key=key)
    assert resend.requests == []


def test_send_email_accepts_a_256_character_idempotency_key(client: ResendClient) -> None:
    assert client.send_email(email(), idempotency_key="k" * 256).email_id


@pytest.mark.parametrize("key", ["", "re_has\nnewline", "re_has space", "re_trailing_newline\n"])
def test_client_refuses_an_unusable_api_key_without_echoing_it(key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ResendClient(http=httpx.Client(), api_key=key)
    assert not key or key not in str(caught.value)


def test_client_repr_hides_the_api_key(client: ResendClient) -> None:
    assert API_KEY not in repr(client)
    assert "api.resend.test" in repr(client)


# --- batch ---------------------------------------------------------------------------------------


def test_send_batch_posts_an_array_in_permissive_mode(resend: FakeResend, client: ResendClient) -> None:
    requests = [email(to=[f"r{n}@acme.test"]) for n in range(3)]

    result = client.send_batch(requests, idempotency_key="batch/1")

    assert (resend.last.method, resend.last.url.path) == ("POST", "/emails/batch")
    assert resend.last.headers["x-batch-validation"] == "permissive"
    assert resend.last.headers["Idempotency-Key"] == "batch/1"
    assert resend.last_json() == [request.to_wire() for request in requests]
    assert [item.email_id for item in result.items] == ["email-0001", "email-0002", "email-0003"]
    assert result.rate_limit.limit == 2


def test_send_batch_maps_permissive_errors_back_to_their_indices(
    resend: FakeResend, client: ResendClient
) -> None:
    # Given Resend refuses items 1 and 3 of five: data holds only the three created emails
    resend.reply(
        200,
        {
            "data": [{"id": "a"}, {"id": "c"}, {"id": "e"}],
            "errors": [{"index": 3, "message": "Invalid `to` field."}, {"index": 1, "message": "Bad tag."}],
        },
    )

    result = client.send_batch([email() for _ in range(5)], idempotency_key="b")

    assert result.items == [
        BatchItemResult(0, "a", None),
        BatchItemResult(1, None, "Bad tag."),
        BatchItemResult(2, "c", None),
        BatchItemResult(3, None, "Invalid `to` field."),
        BatchItemResult(4, "e", None),
    ]


@pytest.mark.parametrize(
    "answer",
    [
        {"data": [{"id": "a"}]},
        {"data": [{"id": "a"}, {"id": "b"}], "errors": [{"index": 0, "message": "x"}]},
        {"data": [{"id": "a"}], "errors": [{"index": 7, "message": "x"}]},
        {"unexpected": True, "data": "nope"},
    ],
)
def test_send_batch_raises_server_error_when_the_answer_does_not_match(
    resend: FakeResend, client: ResendClient, answer: dict[str, Any]
) -> None:
    resend.reply(200, answer)
    with pytest.raises(ResendServerError):
        client.send_batch([email(), email()], idempotency_key="b")


def test_send_batch_accepts_exactly_100(client: ResendClient) -> None:
    result = client.send_batch([email() for _ in range(100)], idempotency_key="b")
    assert len(result.items) == 100


@pytest.mark.parametrize("count", [0, 101])
def test_send_batch_refuses_empty_or_over_100(resend: FakeResend, client: ResendClient, count: int) -> None:
    with pytest.raises(PayloadInvalid, match="requests"):
        client.send_batch([email() for _ in range(count)], idempotency_key="b")
    assert resend.requests == []


def test_send_batch_refuses_attachments_naming_the_item(resend: FakeResend, client: ResendClient) -> None:
    with_file = email(attachments=[{"filename": "a.txt", "content": "aGk="}])
    with pytest.raises(PayloadInvalid, match=r"requests\[1\]\.attachments"):
        client.send_batch([email(), with_file], idempotency_key="b")
    assert resend.requests == []


def test_send_batch_names_the_invalid_item(client: ResendClient) -> None:
    bad = {"from": "a@acme.test", "to": ["nobody"], "subject": "s", "text": "t"}
    with pytest.raises(PayloadInvalid, match=r"requests\[2\]\.to\.0"):
        client.send_batch([email(), email(), bad], idempotency_key="b")


# --- error taxonomy ------------------------------------------------------------------------------

CLOUDFLARE_1010 = "<html><title>Access denied | api.resend.com used Cloudflare</title>Error code 1010</html>"

TAXONOMY = [
    # status, name, message, expected class
    (500, "application_error", "Something went wrong", ResendServerError),
    (500, "internal_server_error", "Unexpected error", ResendServerError),
    (503, "service_unavailable", "Try again", ResendServerError),
    (429, "rate_limit_exceeded", "Too many requests", ResendRateLimited),
    (429, "daily_quota_exceeded", "Daily quota reached", ResendQuotaExceeded),
    (429, "monthly_quota_exceeded", "Monthly quota reached", ResendQuotaExceeded),
    (409, "concurrent_idempotent_requests", "Still in flight", ResendIdempotencyInFlight),
    (409, "resource_locked", "Locked", ResendIdempotencyInFlight),
    (409, "invalid_idempotent_request", "Payload changed", ResendIdempotencyMismatch),
    (409, "something_new", "Conflict", ResendRejected),
    (401, "missing_api_key", "Missing API key", ResendAuthError),
    (401, "restricted_api_key", "This API key is restricted to only send emails", ResendAuthError),
    (401, "validation_error", "API key is invalid", ResendAuthError),
    (400, "validation_error", "API key is invalid", ResendAuthError),
    (403, "invalid_api_key", "API key is invalid", ResendAuthError),
    (403, "restricted_api_key", "API key is not active", ResendAuthError),
    (403, "suspended_api_key", "API key suspended", ResendAuthError),
    (403, "invalid_permission", "Missing scope", ResendAuthError),
    (403, "validation_error", "The acme.test domain is not verified", ResendRejected),
    (403, "email_above_quota", "Over quota", ResendRejected),
    (400, "validation_error", "Invalid `to` field", ResendRejected),
    (400, "invalid_idempotency_key", "Key too long", ResendRejected),
    (404, "not_found", "Not found", ResendRejected),
    (422, "missing_required_field", "Missing `subject` field.", ResendRejected),
    (422, "invalid_attachment", "Attachment needs content or path", ResendRejected),
]


@pytest.mark.parametrize(("status", "name", "message", "expected"), TAXONOMY)
def test_send_email_maps_resend_errors_to_the_taxonomy(
    resend: FakeResend,
    client: ResendClient,
    status: int,
    name: str,
    message: str,
    expected: type[ResendError],
) -> None:
    resend.reply(status, error_body(status, name, message))

    with pytest.raises(ResendError) as caught:
        client.send_email(email(), idempotency_key="k")

    error = caught.value
    assert type(error) is expected
    assert (error.status_code, error.error_name, error.message) == (status, name, message)
    assert str(error) == f"{status} {name}: {message}"


@pytest.mark.parametrize(
    ("status", "text", "expected"),
    [
        (403, CLOUDFLARE_1010, ResendAuthError),
        (502, "<html>Bad gateway</html>", ResendServerError),
        (503, "", ResendServerError),
        (422, "", ResendRejected),
        (400, '{"unexpected": "shape"}', ResendRejected),
        (302, "", ResendRejected),
    ],
)
def test_send_email_maps_non_json_answers_cleanly(
    resend: FakeResend, client: ResendClient, status: int, text: str, expected: type[ResendError]
) -> None:
    resend.reply(status, text=text, headers={"content-type": "text/html"})

    with pytest.raises(ResendError) as caught:
        client.send_email(email(), idempotency_key="k")

    assert type(caught.value) is expected
    assert caught.value.status_code == status
    assert caught.value.error_name is None
    assert f"HTTP {status}" in caught.value.message


def test_cloudflare_1010_message_says_what_to_fix(resend: FakeResend, client: ResendClient) -> None:
    resend.reply(403, text=CLOUDFLARE_1010, headers={"content-type": "text/html"})
    with pytest.raises(ResendAuthError, match="User-Agent"):
        client.send_email(email(), idempotency_key="k")


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server disconnected"),
        httpx.ReadError("connection reset"),
    ],
)
def test_transport_failures_become_resend_transport_error(
    resend: FakeResend, client: ResendClient, error: httpx.HTTPError
) -> None:
    resend.fail(error)

    with pytest.raises(ResendTransportError) as caught:
        client.send_email(email(), idempotency_key="k")

    assert caught.value.status_code is None
    assert caught.value.__cause__ is error
    assert type(error).__name__ in str(caught.value)


def test_a_success_with_an_unreadable_body_is_a_server_error(
    resend: FakeResend, client: ResendClient
) -> None:
    resend.reply(200, text="<html>captive portal</html>")
    with pytest.raises(ResendServerError, match="unreadable"):
        client.send_email(email(), idempotency_key="k")


def test_errors_carry_the_rate_limit_headers(resend: FakeResend, client: ResendClient) -> None:
    headers = {**RATE_HEADERS, "retry-after": "2", "x-resend-daily-quota": "100", "x-other": "no"}
    resend.reply(429, error_body(429, "rate_limit_exceeded", "Too many"), headers=headers)

    with pytest.raises(ResendRateLimited) as caught:
        client.send_email(email(), idempotency_key="k")

    assert caught.value.retry_after == 2.0
    assert caught.value.rate_limit == {
        "ratelimit-limit": "2",
        "ratelimit-remaining": "1",
        "ratelimit-reset": "1",
        "retry-after": "2",
        "x-resend-daily-quota": "100",
    }


def test_rate_limited_falls_back_to_ratelimit_reset(resend: FakeResend, client: ResendClient) -> None:
    resend.reply(429, error_body(429, "rate_limit_exceeded", "Too many"), headers={"ratelimit-reset": "3"})
    with pytest.raises(ResendRateLimited) as caught:
        client.send_email(email(), idempotency_key="k")
    assert caught.value.retry_after == 3.0


def test_rate_limited_accepts_an_http_date_retry_after(resend: FakeResend, client: ResendClient) -> None:
    later = format_datetime(NOW + timedelta(seconds=42), usegmt=True)
    resend.reply(429, error_body(429, "rate_limit_exceeded", "Too many"), headers={"retry-after": later})
    with pytest.raises(ResendRateLimited) as caught:
        client.send_email(email(), idempotency_key="k")
    assert caught.value.retry_after == 42.0


def test_daily_quota_waits_until_utc_midnight(resend: FakeResend, client: ResendClient) -> None:
    resend.reply(429, error_body(429, "daily_quota_exceeded", "Daily quota"))
    with pytest.raises(ResendQuotaExceeded) as caught:
        client.send_email(email(), idempotency_key="k")
    assert caught.value.retry_after == 2 * 3600.0  # NOW is 22:00 UTC


def test_monthly_quota_has_no_guessed_wait(resend: FakeResend, client: ResendClient) -> None:
    resend.reply(429, error_body(429, "monthly_quota_exceeded", "Monthly quota"))
    with pytest.raises(ResendQuotaExceeded) as caught:
        client.send_email(email(), idempotency_key="k")
    assert caught.value.retry_after is None


# --- key check and reads -------------------------------------------------------------------------


def test_check_key_reports_full_access_on_200(resend: FakeResend, client: ResendClient) -> None:
    assert client.check_key() is KeyCheck.FULL_ACCESS
    assert (resend.last.method, resend.last.url.path) == ("GET", "/domains")


def test_check_key_reports_sending_only_on_401_restricted(resend: FakeResend, client: ResendClient) -> None:
    resend.reply(401, error_body(401, "restricted_api_key", "This API key is restricted to only send emails"))
    assert client.check_key() is KeyCheck.SENDING_ONLY


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (403, "invalid_api_key"),
        (403, "restricted_api_key"),
        (401, "missing_api_key"),
        (400, "validation_error"),
    ],
)
def test_check_key_raises_auth_error_for_unusable_keys(
    resend: FakeResend, client: ResendClient, status: int, name: str
) -> None:
    resend.reply(status, error_body(status, name, "API key is invalid"))
    with pytest.raises(ResendAuthError):
        client.check_key()


def test_check_key_passes_other_errors_through(resend: FakeResend, client: ResendClient) -> None:
    resend.reply(429, error_body(429, "rate_limit_exceeded", "Too many"))
    with pytest.raises(ResendRateLimited):
        client.check_key()


# --- header parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("1.5", 1.5),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("-5", 0.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
        ("Sun, 01 Mar 2026 22:01:00 GMT", 60.0),
        ("soon", None),
        ("inf", None),
        ("nan", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after_reads_seconds_or_http_dates(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {"ratelimit-limit": "10", "ratelimit-remaining": "9", "ratelimit-reset": "0.5"},
            RateLimitInfo(10, 9, 0.5),
        ),
        ({"ratelimit-limit": "ten"}, RateLimitInfo(None, None, None)),
        ({}, RateLimitInfo(None, None, None)),
    ],
)
def test_rate_limit_info_reads_the_headers_tolerantly(
    headers: dict[str, str], expected: RateLimitInfo
) -> None:
    assert RateLimitInfo.from_headers(httpx.Headers(headers)) == expected


def test_send_body_is_json_that_resend_can_read(resend: FakeResend, client: ResendClient) -> None:
    client.send_email(email(subject="Grüße"), idempotency_key="k")
    assert json.loads(resend.last.content.decode("utf-8"))["subject"] == "Grüße"
