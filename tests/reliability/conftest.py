"""Fixtures of the reliability suite; each scenario's line of figures is printed in the summary."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.reliability.harness import FULL
from tests.reliability.servers import PostgresServer, RedisServer, own_postgres, own_redis

_FIGURES: list[str] = []


@pytest.fixture
def figures() -> Callable[[str], None]:
    """Record a scenario's one line of figures (printed at the end of the run, even without ``-s``)."""
    return _FIGURES.append


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private ``redis-server`` for this scenario (broker and buckets; free to restart)."""
    with own_redis() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for the scenarios that restart it or need commit timestamps."""
    with own_postgres() as server:
        yield server


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FIGURES:
        terminalreporter.write_sep("=", f"reliability figures ({'full' if FULL else 'short'} sizes)")
        for line in _FIGURES:
            terminalreporter.write_line(line)
