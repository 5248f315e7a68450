"""``pilot org``: organizations."""

from __future__ import annotations

import click

from shared import connector_store as store
from shared.cli.context import CliContext, pass_cli


@click.group()
def org() -> None:
    """Organizations."""


@org.command("create")
@click.argument("name")
@click.option("--actor", default="cli", show_default=True)
@pass_cli
def create(ctx: CliContext, name: str, actor: str) -> None:
    """Create an organization and print its id."""
    with ctx.transaction() as session:
        organization = store.create_organization(session, name, actor=actor)
    click.echo(str(organization.id))
