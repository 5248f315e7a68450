"""`pilot connector add` and `set-limits` refuse, naming the flag, what every send would refuse later."""

from __future__ import annotations

import re

import pytest

from shared.rate_limit import MAX_LIMIT
from tests.integration.conftest import Pilot
from tests.integration.test_cli import connector_id, org_id

TOO_MANY = str(1_000_000_000_000)


def add(pilot: Pilot, org: str, *flags: str) -> tuple[int, str]:
    result = pilot("connector", "add", "--org", org, "--name", "main", "--api-key", "re_cli_key", *flags)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        (("--per-hour", TOO_MANY, "--per-day", TOO_MANY), "--per-hour"),
        (("--per-hour", "10", "--per-day", TOO_MANY), "--per-day"),
        (("--per-hour", "0", "--per-day", "10"), "--per-hour"),
    ],
)
def test_connector_add_refuses_a_budget_the_rate_limiter_refuses(
    pilot: Pilot, flags: tuple[str, ...], flag: str
) -> None:
    org = org_id(pilot)

    exit_code, output = add(pilot, org, "--from", "news@acme.test", *flags)

    assert exit_code == 2
    assert f"{flag}: must be a whole number from 1 to {MAX_LIMIT}" in output
    assert "Traceback" not in output
    assert "main" not in pilot("connector", "list").output


@pytest.mark.parametrize(
    "sender", ["Evil <a@example.com>\r\nBcc: x@evil.example", "not-an-address", "a@x.com, b@y.com"]
)
def test_connector_add_refuses_a_sender_the_send_path_refuses(pilot: Pilot, sender: str) -> None:
    org = org_id(pilot)

    exit_code, output = add(pilot, org, "--from", sender)

    assert exit_code == 2
    assert output.startswith("Error: --from: ")
    assert len(output.strip().splitlines()) == 1
    assert "main" not in pilot("connector", "list").output


def test_connector_add_names_every_refused_flag_on_one_line(pilot: Pilot) -> None:
    org = org_id(pilot)

    exit_code, output = add(pilot, org, "--from", "not-an-address", "--per-hour", TOO_MANY)

    assert exit_code == 2
    assert "--from: " in output and "--per-hour: " in output
    assert len(output.strip().splitlines()) == 1


def test_connector_add_accepts_the_largest_budgets_the_rate_limiter_takes(pilot: Pilot) -> None:
    org = org_id(pilot)

    exit_code, output = add(pilot, org, "--per-hour", str(MAX_LIMIT), "--per-day", str(MAX_LIMIT))

    assert exit_code == 0, output


@pytest.mark.parametrize(
    ("per_hour", "per_day", "flag"), [(TOO_MANY, TOO_MANY, "--per-hour"), ("5", TOO_MANY, "--per-day")]
)
def test_connector_set_limits_refuses_a_budget_the_rate_limiter_refuses(
    pilot: Pilot, per_hour: str, per_day: str, flag: str
) -> None:
    cid = connector_id(pilot, org_id(pilot))

    result = pilot("connector", "set-limits", cid, "--per-hour", per_hour, "--per-day", per_day)

    assert result.exit_code == 2
    assert f"{flag}: must be a whole number from 1 to {MAX_LIMIT}" in result.output
    shown = pilot("connector", "show", cid).output
    assert re.search(r"per hour\W+50\b", shown) and re.search(r"per day\W+500\b", shown)


def test_connector_set_limits_sets_the_transactional_reserve(pilot: Pilot) -> None:
    cid = connector_id(pilot, org_id(pilot))

    result = pilot(
        "connector", "set-limits", cid, "--per-hour", "100", "--per-day", "1000", "--reserve-per-hour", "20"
    )

    assert result.exit_code == 0, result.output
    assert "reserved for transactional mail: 20/hour, 0/day" in result.output


def test_usage_shows_the_reserve_and_what_bulk_mail_may_still_use(pilot: Pilot) -> None:
    cid = connector_id(pilot, org_id(pilot))
    pilot(
        "connector", "set-limits", cid, "--per-hour", "100", "--per-day", "1000", "--reserve-per-day", "250"
    )

    result = pilot("usage", cid)

    assert result.exit_code == 0, result.output
    assert re.search(r"day\W+0\W+1000\W+1000\W+250\W+750\b", result.output), result.output


def test_connector_set_limits_refuses_a_reserve_that_leaves_bulk_mail_nothing(pilot: Pilot) -> None:
    cid = connector_id(pilot, org_id(pilot))

    result = pilot(
        "connector", "set-limits", cid, "--per-hour", "100", "--per-day", "1000", "--reserve-per-hour", "100"
    )

    assert result.exit_code == 2
    assert "--reserve-per-hour: must be below its budget (100)" in result.output
