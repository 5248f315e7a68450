"""``pilot reputation``: each organization's bounce and complaint rates, state and history; resume; set."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import click
from rich.table import Table

from shared.cli.context import CliContext, pass_cli
from shared.cli.output import JSON_FLAG, WIDE_FLAG, cell, print_json, print_table, printable
from shared.errors import OrganizationNotFound, PayloadInvalid
from shared.models import Organization
from shared.reputation import guard, policy


@click.group(invoke_without_command=True)
@JSON_FLAG
@WIDE_FLAG
@click.pass_context
def reputation(click_ctx: click.Context, as_json: bool, wide: bool) -> None:
    """Rates, state and history of every organization the reputation guard has judged."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx = click_ctx.find_object(CliContext) or click_ctx.ensure_object(CliContext)
    with ctx.session_factory() as session:
        report = guard.report(session, ctx.settings, now=datetime.now(UTC))
    if as_json:
        print_json(report)
        return
    if not report:
        click.echo("No organization has had a delivery outcome counted yet.")
        return
    for entry in report:
        _print_organization(ctx, entry, wide=wide)


def _print_organization(ctx: CliContext, entry: dict[str, Any], *, wide: bool) -> None:
    thresholds = entry["thresholds"]
    title = (
        f"Organization {entry['organization_id']}: {entry['state']}, {entry['held_rows']} bulk rows held "
        f"(window {entry['window_days']} days, a campaign's last {entry['campaign_window']} recipients; "
        f"warn {_pct(thresholds['warn_bounce_rate'])} bounces / "
        f"{_pct(thresholds['warn_complaint_rate'])} complaints, pause {_pct(thresholds['pause_bounce_rate'])}"
        f" / {_pct(thresholds['pause_complaint_rate'])}, from {thresholds['min_volume']} recipients)"
    )
    table = Table(title=title)
    for column in ("scope", "id", "state", "recipients", "hard bounces", "complaints", "reason"):
        table.add_column(column, overflow="fold")
    for scope in entry["scopes"]:
        rates = scope["rates"]
        table.add_row(
            scope["scope"],
            scope["scope_id"],
            scope["state"],
            str(rates["recipients"]),
            f"{rates['hard_bounces']} ({_pct(rates['bounce_rate'])})",
            f"{rates['complaints']} ({_pct(rates['complaint_rate'])})",
            cell(scope["reason"] or ""),
        )
    print_table(ctx.console, table, wide=wide)
    for event in entry["history"]:
        line = f"  {event['at']}  {event['action']}  by {event['actor']}  {event['reason'] or ''}"
        click.echo(printable(line))


@reputation.command("resume")
@click.option("--org", "organization", required=True, help="Organization id.")
@click.option("--reason", default=None, help="Why (kept in the audit log).")
@click.option("--actor", default="cli", show_default=True)
@pass_cli
def resume(ctx: CliContext, organization: str, reason: str | None, actor: str) -> None:
    """Lift the organization's pauses: bulk rows waiting now are all sent; later sends are judged afresh."""
    organization_id = _organization_id(organization)
    with ctx.transaction() as session:
        if session.get(Organization, organization_id) is None:
            raise OrganizationNotFound(f"--org: no organization with id {organization_id}")
        done = guard.resume(session, organization_id, actor=actor, now=datetime.now(UTC), reason=reason)
    if not done.scopes:
        click.echo(f"organization {organization_id} is not paused; nothing to resume (audited)")
        return
    click.echo(
        f"resumed {len(done.scopes)} paused scope(s) of organization {organization_id}; "
        f"{done.released} waiting bulk rows released (sent within a minute)"
    )


@reputation.command("set")
@click.option("--org", "organization", required=True, help="Organization id.")
@click.option("--warn-bounce", type=float, help="Warn at this hard-bounce rate (0.04 is 4 %).")
@click.option("--pause-bounce", type=float, help="Pause bulk sending at this hard-bounce rate.")
@click.option("--warn-complaint", type=float, help="Warn at this complaint rate.")
@click.option("--pause-complaint", type=float, help="Pause bulk sending at this complaint rate.")
@click.option("--min-volume", type=int, help="Act on nothing below this many recipients in the window.")
@click.option("--actor", default="cli", show_default=True)
@pass_cli
def set_thresholds(
    ctx: CliContext,
    organization: str,
    warn_bounce: float | None,
    pause_bounce: float | None,
    warn_complaint: float | None,
    pause_complaint: float | None,
    min_volume: int | None,
    actor: str,
) -> None:
    """Set the organization's own thresholds, within the operator's limits (audited)."""
    organization_id = _organization_id(organization)
    with ctx.transaction() as session:
        thresholds = policy.set_policy(
            session,
            organization_id,
            ctx.settings,
            actor=actor,
            warn_bounce_rate=warn_bounce,
            pause_bounce_rate=pause_bounce,
            warn_complaint_rate=warn_complaint,
            pause_complaint_rate=pause_complaint,
            min_volume=min_volume,
        )
    click.echo(json.dumps(thresholds.__dict__, sort_keys=True))


def _organization_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise PayloadInvalid("--org: expected an organization id (a UUID)") from None


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.2f} %"
