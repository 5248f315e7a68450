"""Fixtures shared by every test: settings, real services on loopback, isolation by name."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

#: Admin connection used to create and drop per-run databases.
ADMIN_DATABASE_URL = os.environ.get(
    "PILOT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("PILOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_prefix() -> str:
    """A Redis key prefix unique to this test, so tests never see each other's keys."""
    return f"pilot-test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def real_redis(redis_prefix: str) -> Iterator[redis.Redis]:
    """The real Redis on loopback; fails (never skips) when it is down. Cleans its keys after."""
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    yield client
    keys = list(client.scan_iter(match=f"{redis_prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
