"""ResendConnector without a database: budgets, checks, configuration, and the sends it refuses before
the send path (tests/integration/test_connector_sends.py covers its sends)."""

from __future__ import annotations

import uuid
from typing import Any

import fakeredis
import pytest
from pydantic import SecretStr

from shared.connectors.registry import CONNECTOR_TYPES
from shared.connectors.resend import NO_KEY, ResendConnector
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


# --- sends refused before the send path ---------------------------------------------------------


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


def test_can_execute_and_usage_stats_read_the_shared_buckets(
    resend: FakeResend, limiter: RateLimiter
) -> None:
    connector = make_connector(resend, limiter, config={**CONFIG, "rate_limit_per_hour": 3})
    assert limiter.acquire_emails(CONNECTOR_ID, 1, connector.limits).granted  # one email sent

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


# --- registry ------------------------------------------------------------------------------------


def test_registry_knows_resend() -> None:
    assert CONNECTOR_TYPES["resend"] is ResendConnector
