"""``pilot suppression``: the organization's suppression list."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import BinaryIO

import click
from rich.table import Table

from shared import connector_store as store
from shared import suppression_admin as admin
from shared.cli.context import CliContext, pass_cli
from shared.cli.output import JSON_FLAG, WIDE_FLAG, cell, print_json, print_table, printable
from shared.cli.params import ISO_TIME
from shared.models import SUPPRESSION_REASONS, SuppressionReason

ORG = click.option("--org", "organization_id", required=True, help="Organization id.")
ACTOR = click.option("--actor", default="cli", show_default=True, help="Who acts, for the audit log.")
TOPIC = click.option("--topic", default="", help="The topic the entry stops (default: every email).")


@click.group()
def suppression() -> None:
    """Addresses an organization never sends to."""


@suppression.command("list")
@ORG
@click.option("--all", "include_expired", is_flag=True, help="Include expired entries.")
@JSON_FLAG
@WIDE_FLAG
@pass_cli
def list_(ctx: CliContext, organization_id: str, include_expired: bool, as_json: bool, wide: bool) -> None:
    """List suppressed addresses."""
    with ctx.session_factory() as session:
        org = store.get_organization(session, organization_id)
        rows = admin.list_entries(session, org.id, include_expired=include_expired)
    if as_json:
        print_json(
            [
                {
                    "email": row.email,
                    "topic": row.topic,
                    "reason": row.reason,
                    "source": row.source,
                    "created_at": row.created_at,
                    "expires_at": row.expires_at,
                }
                for row in rows
            ]
        )
        return
    table = Table("email", "topic", "reason", "source", "since", "expires")
    for row in rows:
        table.add_row(
            cell(row.email),
            cell(row.topic or "(all)"),
            cell(row.reason),
            cell(row.source or ""),
            f"{row.created_at:%Y-%m-%d %H:%M}",
            f"{row.expires_at:%Y-%m-%d}" if row.expires_at else "never",
        )
    print_table(ctx.console, table, wide=wide)
    ctx.console.print(f"{len(rows)} address(es)")


@suppression.command("add")
@ORG
@click.argument("email")
@click.option(
    "--reason",
    type=click.Choice(SUPPRESSION_REASONS),
    default=SuppressionReason.MANUAL.value,
    show_default=True,
)
@click.option("--expires-at", type=ISO_TIME, help="When the entry lapses (ISO 8601; UTC without an offset).")
@TOPIC
@ACTOR
@pass_cli
def add(
    ctx: CliContext,
    organization_id: str,
    email: str,
    reason: str,
    expires_at: datetime | None,
    topic: str,
    actor: str,
) -> None:
    """Suppress an address (for one topic with --topic)."""
    entry = admin.parse_entry(email, reason, expires_at.isoformat() if expires_at else None, topic=topic)
    with ctx.transaction() as session:
        org = store.get_organization(session, organization_id)
        admin.add_entry(session, org.id, entry, actor=actor)
    scope = f" for topic {entry.topic}" if entry.topic else ""
    click.echo(printable(f"Suppressed {entry.email}{scope} ({entry.reason})."))


@suppression.command("remove")
@ORG
@click.argument("email")
@TOPIC
@ACTOR
@pass_cli
def remove(ctx: CliContext, organization_id: str, email: str, topic: str, actor: str) -> None:
    """Remove an address's entry (its entry for one topic with --topic)."""
    stored_topic = admin.parse_topic(topic)
    with ctx.transaction() as session:
        org = store.get_organization(session, organization_id)
        admin.remove_entry(session, org.id, email, actor=actor, topic=stored_topic)
    click.echo(printable(f"Removed {email.strip().lower()}."))


@suppression.command("import")
@ORG
@click.argument("csv_file", type=click.File("rb"))
@ACTOR
@pass_cli
def import_(ctx: CliContext, organization_id: str, csv_file: BinaryIO, actor: str) -> None:
    """Import a UTF-8 CSV (columns: email, reason, expires_at, topic; any case, `,` or `;`; a blank
    topic is every email). The address column may also be an ESP export's (Email Address, E-mail).

    One bad line refuses the whole file, and every bad line is listed. A large file is written in
    batches; if that stops part-way, import the same file again to finish.
    """
    entries = admin.read_csv(csv_file.read())
    with ctx.session_factory() as session:
        org = store.get_organization(session, organization_id)
    report = admin.import_entries(ctx.session_factory, org.id, entries, actor=actor)
    click.echo(
        f"Imported {report.addresses} address(es) from {report.lines} line(s):"
        f" {report.new} new, {report.updated} already listed (updated)."
    )


@suppression.command("export")
@ORG
@click.option("--all", "include_expired", is_flag=True, help="Include expired entries.")
@pass_cli
def export(ctx: CliContext, organization_id: str, include_expired: bool) -> None:
    """Write the list as CSV to standard output."""
    with ctx.session_factory() as session:
        org = store.get_organization(session, organization_id)
        admin.write_csv(admin.list_entries(session, org.id, include_expired=include_expired), sys.stdout)
