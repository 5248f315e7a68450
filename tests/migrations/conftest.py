"""Fixtures of migration tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import create_database, drop_database


@pytest.fixture
def database_url() -> Iterator[str]:
    """An empty database of this test's own (the test migrates it as far as it needs), dropped after."""
    name = f"pilot_test_mig_{uuid.uuid4().hex[:10]}"
    yield create_database(name)
    drop_database(name)
