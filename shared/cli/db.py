"""``pilot db``: create the database, migrate it."""

from __future__ import annotations

import click
import psycopg
from sqlalchemy.engine import make_url

from shared import migrations
from shared.cli.output import printable
from shared.settings import get_settings, mask_url_password


@click.group()
def db() -> None:
    """Database commands."""


@db.command()
def create() -> None:
    """Create the database DATABASE_URL names, unless it exists (on the server of DATABASE_URL)."""
    _create(get_settings().database_url)


@db.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@click.option("--create", "create_first", is_flag=True, help="Create the database first if missing.")
def upgrade(revision: str, create_first: bool) -> None:
    """Migrate DATABASE_URL up to REVISION."""
    url = get_settings().database_url
    if create_first:
        _create(url)
    migrations.upgrade(url, revision)
    click.echo(f"Database {mask_url_password(url)} is at {revision}.")


@db.command()
@click.option("--revision", default="base", show_default=True, help="Target revision.")
@click.confirmation_option(prompt="Downgrading drops data. Continue?")
def downgrade(revision: str) -> None:
    """Migrate DATABASE_URL down to REVISION."""
    migrations.downgrade(get_settings().database_url, revision)
    click.echo(f"Database is at {revision}.")


def _create(url: str) -> None:
    name = make_url(url).database
    try:
        created = migrations.create_database(url)
    except psycopg.Error as exc:
        reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise click.ClickException(
            printable(f"could not create database {name!r} at {mask_url_password(url)}: {reason}")
        ) from None
    click.echo(f"Database {name!r} {'created' if created else 'exists already'}.")
