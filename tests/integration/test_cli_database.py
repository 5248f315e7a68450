"""`pilot db create` and `pilot db upgrade --create`: a database that does not exist yet is made."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect

from shared.cli import cli
from shared.settings import get_settings
from tests.conftest import database_url_for, drop_database


@pytest.fixture
def missing_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The name of a database that does not exist, set as DATABASE_URL (dropped afterwards)."""
    name = f"pilot_test_new_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("DATABASE_URL", database_url_for(name))
    get_settings.cache_clear()
    yield name
    get_settings.cache_clear()
    drop_database(name)


def tables(name: str) -> list[str]:
    engine = create_engine(database_url_for(name))
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_db_create_creates_the_database_of_database_url(missing_database: str) -> None:
    result = CliRunner().invoke(cli, ["db", "create"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"Database '{missing_database}' created."
    assert tables(missing_database) == []


def test_db_create_leaves_an_existing_database_as_it_is(missing_database: str) -> None:
    CliRunner().invoke(cli, ["db", "create"], catch_exceptions=False)

    result = CliRunner().invoke(cli, ["db", "create"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"Database '{missing_database}' exists already."


def test_db_upgrade_with_create_creates_then_migrates(missing_database: str) -> None:
    result = CliRunner().invoke(cli, ["db", "upgrade", "--create"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert "connectors" in tables(missing_database)
