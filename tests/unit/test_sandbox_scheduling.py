"""`scheduled_at` read as Resend reads it: ISO 8601 or "in <n> <unit>", at most 30 days ahead."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.api_errors import ApiError
from sandbox.scheduling import send_time

#: 2026-11-01T12:00:00Z.
NOW = 1793534400.0


@pytest.mark.parametrize(
    ("value", "seconds_ahead"),
    [
        ("2026-11-01T12:01:00.000Z", 60),
        ("2026-11-01T14:00:00+02:00", 0),
        ("2026-11-01T13:01:00+01:00", 60),
        ("2026-11-01T12:00:30", 30),
        ("in 1 min", 60),
        ("in 2 hours", 7200),
        ("In 30 seconds", 30),
        ("in 3 days", 3 * 86400),
        ("2026-12-01T12:00:00Z", 30 * 86400),
    ],
)
def test_send_time_reads_iso_dates_and_relative_times(value: str, seconds_ahead: float) -> None:
    # A time that is now already is no longer ahead: it is sent at once (None).
    assert send_time(value, NOW) == (NOW + seconds_ahead if seconds_ahead else None)


def test_send_time_of_no_value_is_none() -> None:
    assert send_time(None, NOW) is None


def test_send_time_in_the_past_sends_at_once() -> None:
    assert send_time("2026-11-01T11:00:00Z", NOW) is None


@pytest.mark.parametrize("value", ["2026-12-01T12:00:01Z", "in 31 days"])
def test_send_time_more_than_30_days_ahead_is_refused(value: str) -> None:
    with pytest.raises(ApiError, match="30 days") as caught:
        send_time(value, NOW)
    assert (caught.value.status, caught.value.name) == (400, "validation_error")


@pytest.mark.parametrize("value", ["tomorrow at 9am", "in 5 fortnights", "", "2026-13-01", 1793534460, ["x"]])
def test_send_time_refuses_other_forms_naming_the_field(value: Any) -> None:
    with pytest.raises(ApiError, match="`scheduled_at`") as caught:
        send_time(value, NOW)
    assert (caught.value.status, caught.value.name) == (400, "validation_error")
