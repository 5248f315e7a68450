"""The one ISO 8601 reading of times given by operators and files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.timestamps import parse_iso_time


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-12-05T14:00:00Z", datetime(2026, 12, 5, 14, tzinfo=UTC)),
        ("2026-12-05T16:00:00+02:00", datetime(2026, 12, 5, 14, tzinfo=UTC)),
        ("2026-12-05 14:00", datetime(2026, 12, 5, 14, tzinfo=UTC)),
        ("2026-12-05", datetime(2026, 12, 5, tzinfo=UTC)),
    ],
)
def test_a_time_with_z_an_offset_or_neither_is_read(text: str, moment: datetime) -> None:
    assert parse_iso_time(text) == moment


def test_a_time_without_an_offset_is_utc() -> None:
    assert parse_iso_time("2026-12-05T14:00:00").utcoffset() == timedelta(0)


def test_an_offset_is_kept() -> None:
    assert parse_iso_time("2026-12-05T14:00:00-05:00").tzinfo == timezone(timedelta(hours=-5))


@pytest.mark.parametrize("text", ["tomorrow", "05/12/2026", "2026-13-01", ""])
def test_anything_else_is_refused_saying_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601 time such as 2026-12-05T14:00:00Z"):
        parse_iso_time(text)
