"""ResendConnector: the seed's send_email/send_batch over ResendClient, budgets, checks, failures."""

from __future__ import annotations

import json
import uuid
from typing import Any

import fakeredis
import pytest
from pydantic import SecretStr

from shared.connectors.base import BatchResult, ConnectorResult
from shared.connectors.registry import CONNECTOR_TYPES
from shared.connectors.resend import NO_KEY, ResendConnector, chunked, derive_idempotency_key
from shared.errors import ConfigError, ConnectorConfigInvalid
from shared.rate_limit import RateLimiter
from tests.fake_resend import FakeResend, error_body

API_KEY = "re_unit_connector_key_42"
CONNECTOR_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
CONFIG = {"default_from": "Acme <news@acme.test>", "rate_limit_per_hour": 1000, "rate_limit_per_day": 5000}


class RecordingRecorder:
    """Collects what the connector records."""

    def __init__(self) -> None:
        self.usage: list[tuple[int, int]] = []
        self.errors: list[tuple[str, bool]] = []
        self.checks: list[str | None] = []

    def record_usage(self, connector_id: uuid.UUID, *, emails: int, requests: int) -> None:
        self.usage.append((emails, requests))

    def record_error(self, connector_id: uuid.UUID, error: str, *, unusable: bool) -> None:
        self.errors.append((error, unusable))

    def record_check(self, connector_id: uuid.UUID, *, error: str | None) -> None:
        self.checks.append(error)


@pytest.fixture
def resend() -> FakeResend:
    return FakeResend()


@pytest.fixture
def recorder() -> RecordingRecorder:
    return RecordingRecorder()


@pytest.fixture
def limiter(redis_prefix: str) -> RateLimiter:
    return RateLimiter(fakeredis.FakeRedis(), key_prefix=redis_prefix)


def make_connector(
    resend: FakeResend,
    limiter: RateLimiter | None,
    recorder: RecordingRecorder | None = None,
    *,
    api_key: str | None = API_KEY,
    config: dict[str, Any] | None = None,
    status: str = "active",
) -> ResendConnector:
    return ResendConnector(
        api_key=SecretStr(api_key) if api_key else None,
        http=resend.client(),
        connector_id=CONNECTOR_ID,
        config=CONFIG if config is None else config,
        name="unit",
        status=status,
        limiter=limiter,
        recorder=recorder,
    )


@pytest.fixture
def connector(resend: FakeResend, limiter: RateLimiter, recorder: RecordingRecorder) -> ResendConnector:
    return make_connector(resend, limiter, recorder)


def batch_item(n: int, **extra: Any) -> dict[str, Any]:
    return {"to": f"r{n}@acme.test", "subject": f"S{n}", "body": f"<p>{n}</p>", **extra}


# --- send_email ----------------------------------------------------------------------------------


def test_send_email_sends_body_as_html_from_the_default_sender(
    resend: FakeResend, connector: ResendConnector
) -> None:
    result = connector.send_email("a@acme.test", "Hi", "<p>Hello</p>")

    assert result == ConnectorResult(True, "email-0001", None, result.metadata)
    assert resend.last_json() == {
        "from": "Acme <news@acme.test>",
        "to": ["a@acme.test"],
        "subject": "Hi",
        "html": "<p>Hello</p>",
    }


def test_send_email_uses_from_when_given(resend: FakeResend, connector: ResendConnector) -> None:
    connector.send_email("a@acme.test", "Hi", "<p/>", from_="Other <o@acme.test>", reply_to="r@acme.test")
    assert resend.last_json()["from"] == "Other <o@acme.test>"
    assert resend.last_json()["reply_to"] == ["r@acme.test"]


def test_send_email_puts_task_id_in_a_header_and_a_tag(
    resend: FakeResend, connector: ResendConnector
) -> None:
    connector.send_email("a@acme.test", "Hi", "<p/>", task_id="task-7")
    body = resend.last_json()
    assert body["headers"] == {"X-Task-ID": "task-7"}
    assert body["tags"][0] == {"name": "task_id", "value": "task-7"}


def test_send_email_sends_metadata_as_tags_where_it_fits(
    resend: FakeResend, connector: ResendConnector
) -> None:
    metadata = {"campaign": "spring-2026", "n": 3, "vip": True, "note": "has spaces", "nested": {"a": 1}}

    result = connector.send_email("a@acme.test", "Hi", "<p/>", task_id="t1", metadata=metadata)

    assert resend.last_json()["tags"] == [
        {"name": "task_id", "value": "t1"},
        {"name": "campaign", "value": "spring-2026"},
        {"name": "n", "value": "3"},
        {"name": "vip", "value": "true"},
    ]
    assert result.metadata["metadata"] == metadata
    assert result.metadata["untagged_metadata"] == ["note", "nested"]


def test_metadata_never_overrides_the_task_id_tag(resend: FakeResend, connector: ResendConnector) -> None:
    connector.send_email("a@acme.test", "Hi", "<p/>", task_id="t1", metadata={"task_id": "other"})
    assert resend.last_json()["tags"] == [{"name": "task_id", "value": "t1"}]


def test_metadata_tags_stop_at_resends_limit_of_75(resend: FakeResend, connector: ResendConnector) -> None:
    metadata = {f"k{n}": "v" for n in range(80)}
    result = connector.send_email("a@acme.test", "Hi", "<p/>", task_id="t1", metadata=metadata)
    assert len(resend.last_json()["tags"]) == 75
    assert result.metadata["untagged_metadata"] == [f"k{n}" for n in range(74, 80)]


def test_send_email_takes_the_optional_fields(resend: FakeResend, connector: ResendConnector) -> None:
    connector.send_email(
        "a@acme.test",
        "Hi",
        "<p/>",
        text="Hi",
        cc=["c@acme.test"],
        scheduled_at="in 1 min",
        headers={"X-A": "1"},
    )
    body = resend.last_json()
    assert (body["text"], body["cc"], body["scheduled_at"], body["headers"]) == (
        "Hi",
        ["c@acme.test"],
        "in 1 min",
        {"X-A": "1"},
    )


def test_send_email_derives_a_stable_idempotency_key(resend: FakeResend, connector: ResendConnector) -> None:
    connector.send_email("a@acme.test", "Hi", "<p/>", task_id="t1")
    connector.send_email("a@acme.test", "Hi", "<p/>", task_id="t1")
    connector.send_email("a@acme.test", "Hi", "<p>changed</p>", task_id="t1")

    keys = [request.headers["Idempotency-Key"] for request in resend.requests]
    assert keys[0] == keys[1] != keys[2]
    assert keys[0].startswith(f"{CONNECTOR_ID}/t1/")


def test_send_email_uses_the_callers_idempotency_key(resend: FakeResend, connector: ResendConnector) -> None:
    result = connector.send_email("a@acme.test", "Hi", "<p/>", idempotency_key="mine-1")
    assert resend.last.headers["Idempotency-Key"] == "mine-1"
    assert result.metadata["idempotency_key"] == "mine-1"


def test_derived_keys_hash_unsafe_task_ids() -> None:
    key = derive_idempotency_key(CONNECTOR_ID, "task with spaces/" + "x" * 300, {"a": 1})
    assert " " not in key and len(key) <= 256


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"to": "nobody", "subject": "Hi", "body": "<p/>"}, "to.0"),
        ({"to": "a@acme.test", "subject": "", "body": "<p/>"}, "subject"),
        ({"to": "a@acme.test", "subject": "Hi", "body": "<p/>", "metadata": ["x"]}, "metadata"),
        ({"to": "a@acme.test", "subject": "Hi", "body": "<p/>", "colour": "red"}, "colour"),
    ],
)
def test_send_email_refuses_bad_input_before_any_call(
    resend: FakeResend, connector: ResendConnector, arguments: dict[str, Any], field: str
) -> None:
    result = connector.send_email(**arguments)
    assert not result.success
    assert field in (result.error or "")
    assert resend.requests == []


def test_send_email_needs_a_sender(resend: FakeResend, limiter: RateLimiter) -> None:
    connector = make_connector(resend, limiter, config={"rate_limit_per_hour": 10, "rate_limit_per_day": 10})
    result = connector.send_email("a@acme.test", "Hi", "<p/>")
    assert "from_" in (result.error or "")
    assert resend.requests == []


def test_send_email_records_usage(connector: ResendConnector, recorder: RecordingRecorder) -> None:
    connector.send_email("a@acme.test", "Hi", "<p/>")
    assert recorder.usage == [(1, 1)]


# --- failures ------------------------------------------------------------------------------------


def test_a_rejected_send_is_a_failed_result_with_resends_reason(
    resend: FakeResend, connector: ResendConnector, recorder: RecordingRecorder
) -> None:
    resend.reply(422, error_body(422, "validation_error", "Invalid `to` field."))

    result = connector.send_email("a@acme.test", "Hi", "<p/>", metadata={"campaign": "c1"})

    assert not result.success
    assert result.error == "422 validation_error: Invalid `to` field."
    assert result.metadata["error_type"] == "ResendRejected"
    assert result.metadata["metadata"] == {"campaign": "c1"}
    assert connector.last_error == result.error
    assert connector.status == "active"
    assert recorder.errors == [(result.error, False)]
    assert recorder.usage == [(0, 1)]


def test_rate_limited_results_carry_retry_after(resend: FakeResend, connector: ResendConnector) -> None:
    resend.reply(429, error_body(429, "rate_limit_exceeded", "Too many"), headers={"retry-after": "2"})
    result = connector.send_email("a@acme.test", "Hi", "<p/>")
    assert (result.metadata["error_type"], result.metadata["retry_after"]) == ("ResendRateLimited", 2.0)


def test_a_key_error_marks_the_connector_unusable(
    resend: FakeResend, connector: ResendConnector, recorder: RecordingRecorder
) -> None:
    resend.reply(403, error_body(403, "invalid_api_key", "API key is invalid"))

    first = connector.send_email("a@acme.test", "Hi", "<p/>")
    second = connector.send_email("a@acme.test", "Hi", "<p/>")

    assert first.metadata["error_type"] == "ResendAuthError"
    assert connector.status == "error"
    assert recorder.errors == [(first.error, True)]
    assert "is error" in (second.error or "")
    assert len(resend.requests) == 1


def test_last_error_is_scrubbed_of_the_api_key(resend: FakeResend, connector: ResendConnector) -> None:
    resend.reply(400, error_body(400, "validation_error", f"bad request with {API_KEY}"))
    result = connector.send_email("a@acme.test", "Hi", "<p/>")
    assert API_KEY not in (connector.last_error or "")
    assert API_KEY not in (result.error or "")


def test_a_transport_failure_is_a_failed_result(resend: FakeResend, connector: ResendConnector) -> None:
    import httpx

    resend.fail(httpx.ConnectError("refused"))
    result = connector.send_email("a@acme.test", "Hi", "<p/>")
    assert result.metadata["error_type"] == "ResendTransportError"
    assert result.metadata["status_code"] is None


@pytest.mark.parametrize("status", ["paused", "error"])
def test_an_inactive_connector_sends_nothing(resend: FakeResend, limiter: RateLimiter, status: str) -> None:
    connector = make_connector(resend, limiter, status=status)
    result = connector.send_email("a@acme.test", "Hi", "<p/>")
    assert result.error == f"connector {CONNECTOR_ID} is {status}"
    assert resend.requests == []


def test_a_connector_without_a_key_sends_nothing(resend: FakeResend, limiter: RateLimiter) -> None:
    connector = make_connector(resend, limiter, api_key=None)
    assert connector.send_email("a@acme.test", "Hi", "<p/>").error == NO_KEY
    assert connector.test_connection().error == NO_KEY
    assert resend.requests == []


def test_a_connector_without_a_limiter_fails_closed(resend: FakeResend) -> None:
    connector = make_connector(resend, None)
    assert "no rate limiter" in (connector.send_email("a@acme.test", "Hi", "<p/>").error or "")
    with pytest.raises(ConfigError, match="rate limiter"):
        connector.can_execute()
    assert resend.requests == []


# --- budgets -------------------------------------------------------------------------------------


def test_sends_beyond_the_hour_budget_are_refused(resend: FakeResend, limiter: RateLimiter) -> None:
    connector = make_connector(resend, limiter, config={**CONFIG, "rate_limit_per_hour": 2})

    results = [connector.send_email("a@acme.test", f"S{n}", "<p/>") for n in range(3)]

    assert [result.success for result in results] == [True, True, False]
    assert (results[2].error or "").startswith("hour budget spent")
    assert len(resend.requests) == 2


def test_can_execute_and_usage_stats_read_the_shared_buckets(
    resend: FakeResend, limiter: RateLimiter
) -> None:
    connector = make_connector(resend, limiter, config={**CONFIG, "rate_limit_per_hour": 3})
    connector.send_email("a@acme.test", "Hi", "<p/>")

    assert connector.can_execute(2)
    assert not connector.can_execute(3)
    hour = connector.get_usage_stats("hour")
    assert (hour.used, hour.limit, hour.remaining) == (1, 3, 2)
    assert connector.get_usage_stats("day").limit == 5000


def test_can_execute_is_false_for_a_paused_connector(resend: FakeResend, limiter: RateLimiter) -> None:
    assert not make_connector(resend, limiter, status="paused").can_execute()


def test_invalid_limits_raise_config_invalid(resend: FakeResend, limiter: RateLimiter) -> None:
    connector = make_connector(resend, limiter, config={**CONFIG, "rate_limit_per_day": 1})
    with pytest.raises(ConnectorConfigInvalid):
        connector.can_execute()


# --- validate_config -----------------------------------------------------------------------------


def test_validate_config_accepts_a_good_config(connector: ResendConnector) -> None:
    assert connector.validate_config() == []
    connector.require_valid_config()


def test_validate_config_lists_every_problem_at_once(resend: FakeResend, limiter: RateLimiter) -> None:
    connector = make_connector(resend, limiter, api_key="sk_live_wrong")
    config = {"default_from": "not an address", "rate_limit_per_hour": 0, "rate_limit_per_day": -1}

    problems = connector.validate_config(config)

    assert [problem.split(":")[0] for problem in problems] == [
        "api key",
        "default_from",
        "rate_limit_per_hour",
        "rate_limit_per_day",
    ]
    assert "sk_live_wrong" not in " ".join(problems)


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        (
            {**CONFIG, "rate_limit_per_day": 10, "rate_limit_per_hour": 11},
            "rate_limit_per_day: must not be below",
        ),
        ({**CONFIG, "rate_limit_per_hour": True}, "rate_limit_per_hour: must be a positive whole number"),
        ({**CONFIG, "rate_limit_per_hour": 1.5}, "rate_limit_per_hour: must be a positive whole number"),
        ({"rate_limit_per_hour": 1}, "default_from: not set"),
        ({**CONFIG, "api_key": "x"}, "api_key: looks like a secret"),
    ],
)
def test_validate_config_names_each_problem(
    connector: ResendConnector, config: dict[str, Any], problem: str
) -> None:
    assert any(found.startswith(problem) for found in connector.validate_config(config))


def test_validate_config_reports_a_missing_key(resend: FakeResend, limiter: RateLimiter) -> None:
    assert make_connector(resend, limiter, api_key=None).validate_config()[0].startswith("api key: no Resend")


def test_require_valid_config_raises_with_all_problems(resend: FakeResend, limiter: RateLimiter) -> None:
    connector = make_connector(resend, limiter, config={"rate_limit_per_hour": 0})
    with pytest.raises(ConnectorConfigInvalid) as caught:
        connector.require_valid_config()
    assert len(caught.value.problems) == 2


# --- test_connection and status ------------------------------------------------------------------


def test_test_connection_succeeds_with_a_full_access_key(
    connector: ResendConnector, recorder: RecordingRecorder
) -> None:
    result = connector.test_connection()
    assert result.success and result.metadata == {"key_access": "full_access"}
    assert recorder.checks == [None]


def test_test_connection_succeeds_with_a_sending_only_key(
    resend: FakeResend, connector: ResendConnector
) -> None:
    resend.reply(401, error_body(401, "restricted_api_key", "This API key is restricted to only send emails"))
    assert connector.test_connection().metadata == {"key_access": "sending_only"}


def test_test_connection_fails_with_an_invalid_key(
    resend: FakeResend, connector: ResendConnector, recorder: RecordingRecorder
) -> None:
    resend.reply(403, error_body(403, "invalid_api_key", "API key is invalid"))

    result = connector.test_connection()

    assert not result.success
    assert result.error == "403 invalid_api_key: API key is invalid"
    assert recorder.checks == [result.error]
    assert connector.get_status().last_error == result.error


def test_get_status_reports_without_secrets(connector: ResendConnector) -> None:
    status = connector.get_status()
    assert (status.type, status.status, status.can_send) == ("resend", "active", True)
    assert API_KEY not in repr(status)
    assert API_KEY not in repr(connector)


# --- send_batch ----------------------------------------------------------------------------------


def test_send_batch_splits_above_100(resend: FakeResend, connector: ResendConnector) -> None:
    result = connector.send_batch([batch_item(n) for n in range(250)])

    assert [len(json.loads(request.content)) for request in resend.requests] == [100, 100, 50]
    assert (result.total_sent, result.successful, result.failed) == (250, 250, 0)
    assert [r.message_id for r in result.results[:2]] == ["email-0001", "email-0002"]
    assert result.results[249].message_id == "email-0250"
    keys = {request.headers["Idempotency-Key"] for request in resend.requests}
    assert len(keys) == 3


def test_send_batch_maps_local_and_permissive_errors_to_their_items(
    resend: FakeResend, connector: ResendConnector
) -> None:
    # Given item 1 is invalid here, and Resend refuses the second item it receives (item 2)
    emails = [batch_item(0), {"to": "bad", "subject": "x", "body": "y"}, batch_item(2), batch_item(3)]
    resend.reply(200, {"data": [{"id": "a"}, {"id": "c"}], "errors": [{"index": 1, "message": "Bad tag."}]})

    result = connector.send_batch(emails)

    assert [(r.success, r.message_id, r.error) for r in result.results] == [
        (True, "a", None),
        (False, None, result.results[1].error),
        (False, None, "Bad tag."),
        (True, "c", None),
    ]
    assert "to.0" in (result.results[1].error or "")
    assert (result.total_sent, result.successful, result.failed) == (4, 2, 2)
    assert len(json.loads(resend.last.content)) == 3


def test_send_batch_refuses_attachments_per_item(resend: FakeResend, connector: ResendConnector) -> None:
    with_file = batch_item(1, attachments=[{"content": "aGk=", "filename": "a.txt"}])
    result = connector.send_batch([batch_item(0), with_file])
    assert result.results[0].success
    assert "attachments" in (result.results[1].error or "")


def test_send_batch_stops_after_a_key_error(
    resend: FakeResend, connector: ResendConnector, recorder: RecordingRecorder
) -> None:
    resend.reply(403, error_body(403, "invalid_api_key", "API key is invalid"))

    result = connector.send_batch([batch_item(n) for n in range(150)])

    assert result.failed == 150
    assert len(resend.requests) == 1
    assert len(recorder.errors) == 1
    assert (result.results[149].error or "").startswith("not attempted after: 403 invalid_api_key")


def test_send_batch_keeps_task_ids_and_metadata_per_item(
    resend: FakeResend, connector: ResendConnector
) -> None:
    result = connector.send_batch([batch_item(0, task_id="t0", metadata={"m": "v"})])
    sent = json.loads(resend.last.content)[0]
    assert sent["headers"] == {"X-Task-ID": "t0"}
    assert sent["tags"] == [{"name": "task_id", "value": "t0"}, {"name": "m", "value": "v"}]
    assert result.results[0].metadata["metadata"] == {"m": "v"}


def test_send_batch_takes_the_budget_per_chunk(resend: FakeResend, limiter: RateLimiter) -> None:
    connector = make_connector(resend, limiter, config={**CONFIG, "rate_limit_per_hour": 150})
    result = connector.send_batch([batch_item(n) for n in range(200)])
    assert (result.successful, result.failed) == (100, 100)
    assert len(resend.requests) == 1


def test_send_batch_of_nothing_sends_nothing(resend: FakeResend, connector: ResendConnector) -> None:
    assert connector.send_batch([]) == BatchResult(0, 0, 0, [])
    assert resend.requests == []


@pytest.mark.parametrize(
    ("count", "sizes"), [(0, []), (1, [1]), (100, [100]), (101, [100, 1]), (250, [100, 100, 50])]
)
def test_chunked_splits_into_resend_sized_calls(count: int, sizes: list[int]) -> None:
    assert [len(chunk) for chunk in chunked(list(range(count)))] == sizes


def test_chunked_refuses_a_size_below_one() -> None:
    with pytest.raises(ValueError, match="size"):
        list(chunked([1], 0))


def test_registry_knows_resend() -> None:
    assert CONNECTOR_TYPES["resend"] is ResendConnector
