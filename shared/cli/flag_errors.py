"""Refused field values reported by the command-line flag that set them."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import click

from shared.errors import FieldsInvalid


class FlagInvalid(click.ClickException):
    """A flag's value is refused: one line naming the flag, exit code 2 as click's usage errors."""

    exit_code = 2


@contextmanager
def fields_as_flags(flags: Mapping[str, str]) -> Iterator[None]:
    """Turn :class:`FieldsInvalid` raised inside into :class:`FlagInvalid`, naming fields by ``flags``."""
    try:
        yield
    except FieldsInvalid as exc:
        described = "; ".join(
            f"{flags.get(field, field)}: {_named_by_flags(problem, flags)}"
            for field, problem in exc.problems.items()
        )
        raise FlagInvalid(described) from None


def _named_by_flags(problem: str, flags: Mapping[str, str]) -> str:
    """``problem`` with every field it names (``rate_limit_per_hour``) named by its flag instead."""
    for field, flag in flags.items():
        problem = re.sub(rf"\b{re.escape(field)}\b", flag, problem)
    return problem
