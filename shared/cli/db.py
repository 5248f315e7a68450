"""``pilot db``: database migrations."""

from __future__ import annotations

import click

from shared import migrations
from shared.settings import get_settings, mask_url_password


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def upgrade(revision: str) -> None:
    """Migrate DATABASE_URL up to REVISION."""
    url = get_settings().database_url
    migrations.upgrade(url, revision)
    click.echo(f"Database {mask_url_password(url)} is at {revision}.")


@db.command()
@click.option("--revision", default="base", show_default=True, help="Target revision.")
@click.confirmation_option(prompt="Downgrading drops data. Continue?")
def downgrade(revision: str) -> None:
    """Migrate DATABASE_URL down to REVISION."""
    migrations.downgrade(get_settings().database_url, revision)
    click.echo(f"Database is at {revision}.")
