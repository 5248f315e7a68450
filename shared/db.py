"""Engine and session factories. Nothing connects at import time.

Engines are safe after ``fork`` (Celery prefork, gunicorn): the child drops the parent's pooled
connections without closing them, as SQLAlchemy's pooling guide recommends.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import Settings

#: The database is unreachable or no connection is free: the work may be retried later. Code on a raw
#: psycopg connection sees psycopg's own error (``AdminShutdown`` on a restart is one).
DATABASE_UNAVAILABLE = (OperationalError, PoolTimeout, psycopg.OperationalError)


def make_engine(settings: Settings, *, pool_size: int = 5, max_overflow: int | None = None) -> Engine:
    """A pooled engine for ``settings.database_url`` that survives ``fork``.

    ``max_overflow`` defaults to ``pool_size``; ``-1`` never makes a caller wait for a connection.
    """
    engine = create_engine(
        settings.database_url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_recycle=1800,
    )
    _dispose_in_forked_children(engine)
    return engine


def _dispose_in_forked_children(engine: Engine) -> None:
    ref = weakref.ref(engine)

    def after_fork() -> None:
        alive = ref()
        if alive is not None:
            # close=False: the parent still owns those sockets.
            alive.dispose(close=False)

    os.register_at_fork(after_in_child=after_fork)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Session factory bound to ``engine``; objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any error."""
    with factory() as session, session.begin():
        yield session


def raw_connection(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under ``session``, inside the session's transaction (which it begins):
    for statements written for psycopg, run in the same transaction as the session's own."""
    driver = session.connection().connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver
