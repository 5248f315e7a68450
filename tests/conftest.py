"""Fixtures shared by every test: settings, real services on loopback, isolation by name."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import fakeredis
import pytest
import redis

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from shared.crypto import KeyRing


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end modules first (a stable sort keeps each module's own order): run in two processes,
    the long ones start early and the many short ones fill in behind them, not the other way round."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


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


@pytest.fixture(params=["fakeredis", "redis"])
def lua_redis(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """fakeredis (with Lua), then the real Redis on loopback (cleaned by ``real_redis``): a test taking
    it runs on both, and fails when the real one is down."""
    if request.param == "fakeredis":
        yield fakeredis.FakeRedis(server=fakeredis.FakeServer())
    else:
        yield request.getfixturevalue("real_redis")


# --- PostgreSQL -------------------------------------------------------------------------------
# One migrated template database per test run. Tests either share one migrated database through
# a rolled-back transaction (`db_session`), or get their own copy of the template
# (`fresh_database_url`) when the behaviour depends on real commits (races, processes).


def _admin_execute(*statements: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def database_url_for(name: str) -> str:
    """The SQLAlchemy URL of database ``name`` on the test server."""
    base = ADMIN_DATABASE_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


def create_database(name: str, *, template: str | None = None) -> str:
    """Create database ``name`` (optionally from ``template``) and return its URL."""
    suffix = f" TEMPLATE {template}" if template else ""
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"{suffix}')
    return database_url_for(name)


def drop_database(name: str) -> None:
    """Drop database ``name``, closing its connections."""
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    """Name of a database migrated to head, never connected to (so it can be copied)."""
    from shared import migrations

    name = f"pilot_test_tpl_{uuid.uuid4().hex[:10]}"
    url = create_database(name)
    migrations.upgrade(url)
    yield name
    drop_database(name)


@pytest.fixture(scope="session")
def shared_database_url(template_database: str) -> Iterator[str]:
    """A migrated database shared by tests that roll back their transaction."""
    name = f"pilot_test_{uuid.uuid4().hex[:10]}"
    yield create_database(name, template=template_database)
    drop_database(name)


@pytest.fixture(scope="session")
def shared_engine(shared_database_url: str) -> Iterator[Engine]:
    from shared.db import make_engine
    from shared.settings import load_settings

    engine = make_engine(load_settings(database_url=shared_database_url))
    yield engine
    engine.dispose()


@pytest.fixture
def db_session(shared_engine: Engine) -> Iterator[Session]:
    """A session whose every commit is rolled back at the end of the test."""
    from sqlalchemy.orm import Session

    with shared_engine.connect() as connection:
        outer = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
        yield session
        session.close()
        outer.rollback()


@pytest.fixture
def fresh_database_url(template_database: str) -> Iterator[str]:
    """A database of this test's own, migrated to head, dropped afterwards."""
    name = f"pilot_test_{uuid.uuid4().hex[:10]}"
    yield create_database(name, template=template_database)
    drop_database(name)


@pytest.fixture
def session_factory(fresh_database_url: str) -> Iterator[sessionmaker[Session]]:
    """A session factory on this test's own database (commits are real)."""
    from shared.db import make_engine, make_sessionmaker
    from shared.settings import load_settings

    engine = make_engine(load_settings(database_url=fresh_database_url))
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def keyring() -> KeyRing:
    """A key ring with one fresh key."""
    from shared.crypto import KeyRing, generate_key
    from shared.settings import load_settings

    return KeyRing.from_settings(load_settings(pilot_encryption_keys=generate_key()))


# --- Redis databases for Celery ---------------------------------------------------------------
# Celery's queue names are fixed, so tests that publish or consume tasks each take a whole Redis
# database (1-13; 14-15 are left to the demo), reserved with a lock key in database 0.

TEST_REDIS_DATABASES = range(1, 14)


@pytest.fixture
def isolated_redis_url() -> Iterator[str]:
    """A Redis URL on a database no other test uses meanwhile; emptied before and after."""
    locks = redis.Redis.from_url(REDIS_URL)
    token = uuid.uuid4().hex
    for number in TEST_REDIS_DATABASES:
        if locks.set(f"pilot-test-redis-db-lock:{number}", token, nx=True, ex=900):
            break
    else:
        pytest.fail("no free Redis test database (1-13): is another test run holding them all?")
    url = f"{REDIS_URL.rsplit('/', 1)[0]}/{number}"
    database = redis.Redis.from_url(url)
    database.flushdb()
    yield url
    database.flushdb()
    database.close()
    if locks.get(f"pilot-test-redis-db-lock:{number}") == token.encode():
        locks.delete(f"pilot-test-redis-db-lock:{number}")
    locks.close()
