"""Plain psycopg connections to a test database, beside SQLAlchemy: for what a test must do on a
connection of its own (fill a database as an old revision knew it, hold a lock, race another writer)."""

from __future__ import annotations

from typing import Any

import psycopg


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL ``url`` as libpq (and psycopg) spell it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection[tuple[Any, ...]]:
    """A new connection to the database of SQLAlchemy URL ``url`` (autocommit unless told)."""
    return psycopg.connect(libpq_url(url), autocommit=autocommit)
