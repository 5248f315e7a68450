"""Database failures as one line an operator can act on: which database, what is wrong, what to run."""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from shared.settings import mask_url_password

#: PostgreSQL's SQLSTATE codes the CLI explains.
DATABASE_MISSING = "3D000"  # invalid_catalog_name
TABLE_MISSING = "42P01"  # undefined_table
#: A connection refused at start-up carries no SQLSTATE, only the server's message.
_MISSING_AT_CONNECT = re.compile(r'FATAL:\s+database ".*" does not exist')


def describe_database_error(exc: DBAPIError, database_url: str | None) -> str:
    """One line for ``exc``: a missing database or schema says the command that fixes it."""
    where = f" at {mask_url_password(database_url)}" if database_url else ""
    code = getattr(exc.orig, "sqlstate", None)
    if code == DATABASE_MISSING or _MISSING_AT_CONNECT.search(str(exc.orig)):
        name = make_url(database_url).database if database_url else "the database"
        return (
            f"database {name!r} does not exist{where}: create it with `pilot db create`"
            " (or `pilot db upgrade --create`)"
        )
    if code == TABLE_MISSING:
        return f"database{where} is not migrated: run `pilot db upgrade`"
    first_line = (str(exc.orig).strip() or type(exc.orig).__name__).splitlines()[0]
    if isinstance(exc, OperationalError):
        return f"database unavailable{where}: {first_line}"
    return f"database refused the command{where}: {first_line}"
