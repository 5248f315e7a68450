"""Partition periods: a day or a month in UTC, its bounds and the suffix of its partition's name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum


class Grain(StrEnum):
    """How much time one partition holds."""

    DAY = "day"
    MONTH = "month"

    def start_of(self, moment: datetime) -> datetime:
        """The start (UTC) of the period holding ``moment``."""
        utc = moment.astimezone(UTC)
        day = datetime(utc.year, utc.month, utc.day, tzinfo=UTC)
        return day if self is Grain.DAY else day.replace(day=1)

    def after(self, start: datetime) -> datetime:
        """The start of the period following the one starting at ``start``."""
        if self is Grain.DAY:
            return start + timedelta(days=1)
        return months_before(start, -1)

    def suffix(self, start: datetime) -> str:
        """The partition name's suffix: ``20261206`` for a day, ``202612`` for a month."""
        return start.strftime("%Y%m%d" if self is Grain.DAY else "%Y%m")

    def parse(self, suffix: str) -> datetime | None:
        """The start a :meth:`suffix` names, or ``None`` when it names none."""
        try:
            parsed = datetime.strptime(suffix, "%Y%m%d" if self is Grain.DAY else "%Y%m")
        except ValueError:
            return None
        start = parsed.replace(tzinfo=UTC)
        return start if self.suffix(start) == suffix else None


def months_before(moment: datetime, months: int) -> datetime:
    """``moment`` moved back ``months`` calendar months (forward when negative), the day clamped to
    the target month's length."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    following = datetime(year + (month + 1) // 12, (month + 1) % 12 + 1, 1, tzinfo=moment.tzinfo)
    last_day = (following - timedelta(days=1)).day
    return moment.replace(year=year, month=month + 1, day=min(moment.day, last_day))
