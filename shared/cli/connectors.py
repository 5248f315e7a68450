"""``pilot connector``: add, inspect and manage connectors."""

from __future__ import annotations

from typing import Any

import click
from pydantic import SecretStr
from rich.table import Table
from rich.text import Text

from shared import audit
from shared import connector_store as store
from shared.cli.context import CliContext, pass_cli
from shared.cli.flag_errors import fields_as_flags
from shared.cli.output import JSON_FLAG, WIDE_FLAG, cell, print_json, print_table, printable
from shared.models import Connector

ACTOR = click.option("--actor", default="cli", show_default=True, help="Who acts, for the audit log.")
#: The flag that sets each connector config field, to name it when its value is refused.
CONFIG_FLAGS = {
    "default_from": "--from",
    "rate_limit_per_hour": "--per-hour",
    "rate_limit_per_day": "--per-day",
    "reserve_transactional_per_hour": "--reserve-per-hour",
    "reserve_transactional_per_day": "--reserve-per-day",
}


@click.group()
def connector() -> None:
    """Email connectors."""


@connector.command("add")
@click.option("--org", "organization_id", required=True, help="Organization id.")
@click.option("--name", required=True)
@click.option("--from", "default_from", help="Default sender, e.g. 'Acme <news@acme.com>'.")
@click.option("--per-hour", type=int, help="Emails per hour.")
@click.option("--per-day", type=int, help="Emails per day.")
@click.option(
    "--api-key", envvar="PILOT_CONNECTOR_API_KEY", help="Resend API key (or PILOT_CONNECTOR_API_KEY)."
)
@ACTOR
@pass_cli
def add(
    ctx: CliContext,
    organization_id: str,
    name: str,
    default_from: str | None,
    per_hour: int | None,
    per_day: int | None,
    api_key: str | None,
    actor: str,
) -> None:
    """Add a Resend connector and print its id."""
    config: dict[str, Any] = {"default_from": default_from}
    config |= {"rate_limit_per_hour": per_hour} if per_hour is not None else {}
    config |= {"rate_limit_per_day": per_day} if per_day is not None else {}
    secret = SecretStr(api_key) if api_key else None
    with ctx.transaction() as session, fields_as_flags(CONFIG_FLAGS):
        created = store.create_connector(
            session,
            organization_id=organization_id,
            name=name,
            config={k: v for k, v in config.items() if v is not None},
            api_key=secret,
            keyring=ctx.keyring if secret else None,
            actor=actor,
        )
    click.echo(str(created.id))


@connector.command("list")
@click.option("--org", "organization_id", help="Only this organization's connectors.")
@JSON_FLAG
@WIDE_FLAG
@pass_cli
def list_(ctx: CliContext, organization_id: str | None, as_json: bool, wide: bool) -> None:
    """List connectors."""
    with ctx.session_factory() as session:
        org = store.get_organization(session, organization_id).id if organization_id else None
        rows = store.list_connectors(session, org)
    if as_json:
        print_json([connector_record(row) for row in rows])
        return
    table = Table("id", "name", "type", "status", "per hour", "per day", "key", "last error")
    for row in rows:
        table.add_row(*_summary(row))
    print_table(ctx.console, table, wide=wide)


@connector.command("show")
@click.argument("connector_id")
@JSON_FLAG
@pass_cli
def show(ctx: CliContext, connector_id: str, as_json: bool) -> None:
    """Show one connector."""
    with ctx.session_factory() as session:
        row = store.get_connector(session, connector_id)
    if as_json:
        print_json(connector_record(row))
        return
    table = Table("field", "value", show_header=False)
    for field, value in _details(row).items():
        table.add_row(field, cell(value))
    ctx.console.print(table)


def connector_record(row: Connector) -> dict[str, Any]:
    """A connector for ``--json``: every field but its key, which is only said to be set or not."""
    return {
        "id": row.id,
        "organization_id": row.organization_id,
        "name": row.name,
        "type": row.type,
        "status": row.status,
        "default_from": row.config.get("default_from"),
        "rate_limit_per_hour": row.config.get("rate_limit_per_hour"),
        "rate_limit_per_day": row.config.get("rate_limit_per_day"),
        "reserve_transactional_per_hour": row.config.get("reserve_transactional_per_hour", 0),
        "reserve_transactional_per_day": row.config.get("reserve_transactional_per_day", 0),
        "api_key_set": row.credentials_ciphertext is not None,
        "api_key_version": row.credentials_key_version,
        "last_checked_at": row.last_checked_at,
        "last_error": row.last_error,
        "created_at": row.created_at,
    }


@connector.command("set-key")
@click.argument("connector_id")
@click.option("--api-key", envvar="PILOT_CONNECTOR_API_KEY", prompt=True, hide_input=True)
@ACTOR
@pass_cli
def set_key(ctx: CliContext, connector_id: str, api_key: str, actor: str) -> None:
    """Store a new API key (encrypted) for a connector."""
    with ctx.transaction() as session:
        store.set_api_key(session, connector_id, SecretStr(api_key), keyring=ctx.keyring, actor=actor)
    click.echo("Key stored.")


@connector.command("set-limits")
@click.argument("connector_id")
@click.option("--per-hour", type=int, required=True)
@click.option("--per-day", type=int, required=True)
@click.option("--reserve-per-hour", type=int, help="Emails an hour only transactional mail may use.")
@click.option("--reserve-per-day", type=int, help="Emails a day only transactional mail may use.")
@ACTOR
@pass_cli
def set_limits(
    ctx: CliContext,
    connector_id: str,
    per_hour: int,
    per_day: int,
    reserve_per_hour: int | None,
    reserve_per_day: int | None,
    actor: str,
) -> None:
    """Set a connector's hour and day budgets, and the share of each kept for transactional mail."""
    with ctx.transaction() as session, fields_as_flags(CONFIG_FLAGS):
        updated = store.update_limits(
            session,
            connector_id,
            per_hour=per_hour,
            per_day=per_day,
            reserve_per_hour=reserve_per_hour,
            reserve_per_day=reserve_per_day,
            actor=actor,
        )
        limits = store.validate_connector_config(updated.config).limits()
    click.echo(
        f"Limits set: {per_hour}/hour, {per_day}/day; reserved for transactional mail: "
        f"{limits.reserve_per_hour}/hour, {limits.reserve_per_day}/day."
    )


@connector.command("pause")
@click.argument("connector_id")
@click.option("--reason")
@ACTOR
@pass_cli
def pause(ctx: CliContext, connector_id: str, reason: str | None, actor: str) -> None:
    """Pause a connector: it sends nothing until resumed."""
    with ctx.transaction() as session:
        store.pause(session, connector_id, actor=actor, reason=reason)
    click.echo("Paused.")


@connector.command("resume")
@click.argument("connector_id")
@click.option("--reason")
@ACTOR
@pass_cli
def resume(ctx: CliContext, connector_id: str, reason: str | None, actor: str) -> None:
    """Resume a paused connector."""
    with ctx.transaction() as session:
        store.resume(session, connector_id, actor=actor, reason=reason)
    click.echo("Resumed.")


def _summary(row: Connector) -> list[Text]:
    config = row.config
    values = [
        row.id,
        row.name,
        row.type,
        row.status,
        config.get("rate_limit_per_hour", ""),
        config.get("rate_limit_per_day", ""),
        "set" if row.credentials_ciphertext else "fallback",
        row.last_error or "",
    ]
    return [cell(value) for value in values]


def _details(row: Connector) -> dict[str, str]:
    return {
        "id": str(row.id),
        "organization": str(row.organization_id),
        "name": row.name,
        "type": row.type,
        "status": row.status,
        "default from": str(row.config.get("default_from", "")),
        "per hour": str(row.config.get("rate_limit_per_hour", "")),
        "per day": str(row.config.get("rate_limit_per_day", "")),
        "api key": f"set (key version {row.credentials_key_version})"
        if row.credentials_ciphertext
        else "RESEND_API_KEY fallback",
        "last checked": str(row.last_checked_at or "never"),
        "last error": row.last_error or "",
    }


@connector.command("test")
@click.argument("connector_id")
@ACTOR
@pass_cli
def test(ctx: CliContext, connector_id: str, actor: str) -> None:
    """Check the connector's API key against Resend (GET /domains)."""
    from shared.connectors.registry import create_connector

    loaded = create_connector(
        connector_id, session_factory=ctx.session_factory, settings=ctx.settings, include_inactive=True
    )
    result = loaded.test_connection()
    with ctx.transaction() as session:
        row = store.get_connector(session, connector_id)
        audit.record(
            session,
            action="connector.test_connection",
            actor=actor,
            organization_id=row.organization_id,
            connector_id=row.id,
            target=f"connector:{row.id}",
            result="success" if result.success else "failure",
            reason=result.error,
        )
    if not result.success:
        raise click.ClickException(printable(f"connection test failed: {result.error}"))
    click.echo(printable(f"OK: {result.metadata.get('key_access', 'key accepted')}"))
