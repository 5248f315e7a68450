"""The connector config model refuses, at write time, what a send would refuse later."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.addresses import check_address
from shared.connector_config import ConnectorConfig, parse_connector_config
from shared.errors import FieldsInvalid
from shared.rate_limit import MAX_LIMIT, ConnectorLimits

SENDERS = [
    "news@acme.test",
    "Acme News <news@acme.test>",
    "Evil <a@example.com>\r\nBcc: x@evil.example",
    "not-an-address",
    "a@x.com, b@y.com",
    "",
    "Acme <news@acme.test",
]


@pytest.mark.parametrize("budget", [MAX_LIMIT + 1, 1_000_000_000_000, 0, -1])
def test_connector_config_refuses_an_hour_budget_the_rate_limiter_refuses(budget: int) -> None:
    with pytest.raises(ValidationError, match=f"from 1 to {MAX_LIMIT}"):
        ConnectorConfig(rate_limit_per_hour=budget, rate_limit_per_day=MAX_LIMIT)


@pytest.mark.parametrize("budget", [MAX_LIMIT + 1, 1_000_000_000_000, 0])
def test_connector_config_refuses_a_day_budget_the_rate_limiter_refuses(budget: int) -> None:
    with pytest.raises(ValidationError, match=f"from 1 to {MAX_LIMIT}"):
        ConnectorConfig(rate_limit_per_hour=1, rate_limit_per_day=budget)


def test_connector_config_accepts_the_largest_budget_the_rate_limiter_takes() -> None:
    config = ConnectorConfig(rate_limit_per_hour=MAX_LIMIT, rate_limit_per_day=MAX_LIMIT)

    limits = ConnectorLimits(per_hour=config.rate_limit_per_hour, per_day=config.rate_limit_per_day)

    assert (limits.per_hour, limits.per_day) == (MAX_LIMIT, MAX_LIMIT)


@pytest.mark.parametrize("sender", SENDERS)
def test_connector_config_refuses_exactly_the_senders_the_send_path_refuses(sender: str) -> None:
    try:
        check_address(sender)
        send_path_refuses = False
    except ValueError:
        send_path_refuses = True

    try:
        ConnectorConfig(default_from=sender)
        config_refuses = False
    except ValidationError:
        config_refuses = True

    assert config_refuses == send_path_refuses


@pytest.mark.parametrize("sender", ["Evil <a@example.com>\r\nBcc: x@evil.example", "not-an-address"])
def test_connector_config_refuses_a_sender_with_a_line_break_or_no_address(sender: str) -> None:
    with pytest.raises(ValidationError, match="default_from"):
        ConnectorConfig(default_from=sender)


def test_parse_connector_config_names_every_bad_field_without_its_value() -> None:
    with pytest.raises(FieldsInvalid) as caught:
        parse_connector_config(
            {"default_from": "not-an-address", "rate_limit_per_hour": 10**12, "rate_limit_per_day": 0}
        )

    assert sorted(caught.value.problems) == ["default_from", "rate_limit_per_day", "rate_limit_per_hour"]
    assert "not-an-address" not in str(caught.value)


def test_parse_connector_config_names_the_day_budget_when_it_is_below_the_hour_budget() -> None:
    with pytest.raises(FieldsInvalid) as caught:
        parse_connector_config({"rate_limit_per_hour": 100, "rate_limit_per_day": 10})

    assert caught.value.problems == {"rate_limit_per_day": "must not be below rate_limit_per_hour"}
