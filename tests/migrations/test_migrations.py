"""Migrations against the real PostgreSQL: upgrade, check against the models, downgrade, upgrade."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from shared import migrations
from shared.models import Base
from tests.conftest import create_database, drop_database


@pytest.fixture
def empty_database_url() -> Iterator[str]:
    name = f"pilot_test_mig_{uuid.uuid4().hex[:10]}"
    yield create_database(name)
    drop_database(name)


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_creates_every_model_table(empty_database_url: str) -> None:
    migrations.upgrade(empty_database_url)

    assert set(Base.metadata.tables) <= _tables(empty_database_url)


def test_migrated_schema_matches_the_models(empty_database_url: str) -> None:
    migrations.upgrade(empty_database_url)

    migrations.check(empty_database_url)  # raises when autogenerate would emit anything


def test_downgrade_to_base_then_upgrade_again(empty_database_url: str) -> None:
    migrations.upgrade(empty_database_url)
    migrations.downgrade(empty_database_url, "base")
    assert _tables(empty_database_url) == {"alembic_version"}

    migrations.upgrade(empty_database_url)
    migrations.check(empty_database_url)


def test_alembic_command_line_uses_pyproject_config(empty_database_url: str) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "DATABASE_URL": empty_database_url}
    root = Path(__file__).resolve().parents[2]
    alembic = Path(sys.executable).with_name("alembic")
    result = subprocess.run(
        [str(alembic), "upgrade", "head"], cwd=root, env=env, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr
    assert set(Base.metadata.tables) <= _tables(empty_database_url)
