"""``pilot org``: organizations."""

from __future__ import annotations

import click
from rich.table import Table

from shared import connector_store as store
from shared.cli.context import CliContext, pass_cli
from shared.cli.output import JSON_FLAG, WIDE_FLAG, cell, print_json, print_table


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


@org.command("list")
@JSON_FLAG
@WIDE_FLAG
@pass_cli
def list_(ctx: CliContext, as_json: bool, wide: bool) -> None:
    """List organizations, oldest first, with their connector count."""
    with ctx.session_factory() as session:
        organizations = store.list_organizations(session)
        connectors = store.list_connectors(session)
    counts = {organization.id: 0 for organization in organizations}
    for row in connectors:
        counts[row.organization_id] = counts.get(row.organization_id, 0) + 1
    records = [
        {
            "id": organization.id,
            "name": organization.name,
            "connectors": counts[organization.id],
            "created_at": organization.created_at,
        }
        for organization in organizations
    ]
    if as_json:
        print_json(records)
        return
    table = Table("id", "name", "connectors", "created (UTC)")
    for record in records:
        table.add_row(
            str(record["id"]),
            cell(record["name"]),
            str(record["connectors"]),
            f"{record['created_at']:%Y-%m-%d %H:%M}",
        )
    print_table(ctx.console, table, wide=wide)
