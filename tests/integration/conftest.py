"""Fixtures for integration tests that drive the `pilot` CLI."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner, Result

from shared.cli import cli
from shared.crypto import generate_key
from shared.settings import get_settings

Pilot = Callable[..., Result]


@pytest.fixture
def pilot(
    fresh_database_url: str, isolated_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Pilot]:
    """Run `pilot ARGS...` through click's runner against this test's own database and Redis."""
    monkeypatch.setenv("DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("REDIS_URL", isolated_redis_url)
    monkeypatch.setenv("PILOT_REDIS_PREFIX", f"pilot-test-{uuid.uuid4().hex[:8]}:")
    monkeypatch.setenv("PILOT_ENCRYPTION_KEYS", generate_key())
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()
