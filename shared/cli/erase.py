"""``pilot erase``: remove or anonymise one person's rows in one organization, keep them suppressed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import click

from shared.cli.context import CliContext, pass_cli
from shared.cli.output import JSON_FLAG, print_json
from shared.erasure import ErasureReport, erase
from shared.errors import PayloadInvalid
from shared.suppression import suppression_address


@click.command(name="erase")
@click.option("--org", "organization", required=True, help="Organization id.")
@click.option("--email", required=True, help="The person's address (any case).")
@click.option("--actor", default="cli", show_default=True)
@JSON_FLAG
@pass_cli
def erase_command(ctx: CliContext, organization: str, email: str, actor: str, as_json: bool) -> None:
    """Erase a person from an organization: their emails, events and entries lose the address, which
    is kept only hashed, on the suppression list (never mailed again). Audited, by hash."""
    try:
        organization_id = uuid.UUID(organization)
    except ValueError:
        raise PayloadInvalid("--org: expected an organization id (a UUID)") from None
    try:
        suppression_address(email, operator_input=True)
    except PayloadInvalid as exc:
        raise PayloadInvalid(f"--email: {exc}") from None
    with ctx.transaction() as session:
        report = erase(session, organization_id, email, actor=actor, now=datetime.now(UTC))
    if as_json:
        print_json({"organization_id": organization_id, **report.as_dict()})
        return
    click.echo(_summary(organization_id, report))


def _summary(organization_id: uuid.UUID, report: ErasureReport) -> str:
    kept = f"the address is kept only as {report.address_hash} on the suppression list: never mailed again"
    if not report.found:
        return f"organization {organization_id} held nothing of this address; {kept}"
    return (
        f"erased from organization {organization_id}: {report.messages} emails ({report.cancelled}"
        f" cancelled before they left), {report.metrics} delivery events, {report.webhook_events} webhook"
        f" bodies, {report.outcome_events} outcome events, {report.suppression_entries} suppression"
        f" entries, {report.dead_letters} dead letters, {report.attachments} attachments; {kept}"
    )
