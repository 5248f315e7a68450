"""Click parameter types shared by the ``pilot`` commands."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from shared.timestamps import parse_iso_time


class IsoTime(click.ParamType[datetime]):
    """An ISO 8601 time with ``Z`` or an offset (UTC when neither), read by :func:`parse_iso_time`."""

    name = "ISO-8601-TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_iso_time(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


ISO_TIME = IsoTime()
