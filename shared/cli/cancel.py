"""``pilot cancel``: sends that have not left become ``cancelled``; each row's answer is printed."""

from __future__ import annotations

import uuid

import click
from rich.table import Table

from shared.cli.context import CliContext, pass_cli
from shared.cli.output import JSON_FLAG, cell, print_json
from shared.db import raw_connection
from shared.errors import PayloadInvalid
from shared.sending.cancellation import Selection, cancel


def _uuid(value: str, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise PayloadInvalid(f"{name}: not a UUID") from None


@click.command(name="cancel")
@click.argument("message_ids", nargs=-1)
@click.option("--connector", "connector_id", help="Connector id (required with --idempotency-key).")
@click.option("--idempotency-key", help="The key the send was made with.")
@click.option("--task", "task_id", help="A tasks row id: every waiting send of the task.")
@JSON_FLAG
@pass_cli
def cancel_command(
    ctx: CliContext,
    message_ids: tuple[str, ...],
    connector_id: str | None,
    idempotency_key: str | None,
    task_id: str | None,
    as_json: bool,
) -> None:
    """Cancel scheduled, queued or deferred sends, named by ledger ids, --idempotency-key or --task."""
    selection = Selection(
        connector_id=_uuid(connector_id, "--connector") if connector_id else None,
        idempotency_key=idempotency_key,
        task_id=_uuid(task_id, "--task") if task_id else None,
        message_ids=tuple(_uuid(value, "MESSAGE_IDS") for value in message_ids),
    )
    with ctx.session_factory() as session:
        outcome = cancel(raw_connection(session), selection, actor="cli")
        session.commit()
    if as_json:
        print_json(outcome.as_dict())
        return
    if not outcome.answers:
        click.echo("no send matches")
        return
    table = Table("message", "recipient", "answer", "status")
    for item in outcome.answers:
        table.add_row(item.message_id, cell(item.recipient), item.answer, item.status)
    ctx.console.print(table)
    click.echo(", ".join(f"{answer}: {count}" for answer, count in sorted(outcome.counts().items())))
