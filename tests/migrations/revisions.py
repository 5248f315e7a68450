"""Databases at a given revision, for tests that fill a database as an earlier revision knew it and
then upgrade it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from alembic.script import ScriptDirectory

from shared import migrations
from tests.conftest import create_database, drop_database


def previous_revision(revision: str) -> str:
    """The revision ``revision`` upgrades from."""
    down = ScriptDirectory.from_config(migrations.alembic_config()).get_revision(revision).down_revision
    assert isinstance(down, str)
    return down


@contextmanager
def database_before(revision: str) -> Iterator[str]:
    """A database of its own migrated to the revision before ``revision``: its URL; dropped after."""
    name = f"pilot_test_mig_{uuid.uuid4().hex[:10]}"
    url = create_database(name)
    migrations.upgrade(url, previous_revision(revision))
    yield url
    drop_database(name)
