"""Run Alembic programmatically (``pilot db upgrade``, tests, the demo); create the database."""

from __future__ import annotations

from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from psycopg import sql
from sqlalchemy.engine import make_url

from shared.errors import ConfigError

#: migrations/ sits beside the shared package in the source tree (installed editable).
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic config pointing at our migrations, optionally at ``database_url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    """Upgrade the database to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str | None = None, revision: str = "base") -> None:
    """Downgrade the database to ``revision``."""
    command.downgrade(alembic_config(database_url), revision)


def check(database_url: str | None = None) -> None:
    """Raise if the models and the migrated schema differ (``alembic check``)."""
    command.check(alembic_config(database_url))


#: The database on every PostgreSQL server that one connects to in order to create another.
MAINTENANCE_DATABASE = "postgres"


def create_database(database_url: str) -> bool:
    """Create the database ``database_url`` names, on its server, unless it exists; True if created.

    Connects to the server's ``postgres`` database with the same credentials.
    """
    url = make_url(database_url)
    name = url.database
    if not name:
        raise ConfigError("DATABASE_URL: names no database")
    admin = url.set(drivername="postgresql", database=MAINTENANCE_DATABASE)
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:  # created meanwhile by someone else
            return False
    return True
