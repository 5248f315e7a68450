"""``pilot dead-letters list / show``: broker messages the workers refused, with the reason."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

import click
from rich.table import Table
from rich.text import Text
from sqlalchemy import select

from shared.cli.context import CliContext, pass_cli
from shared.cli.output import JSON_FLAG, WIDE_FLAG, print_json, print_table
from shared.errors import NotFound, PayloadInvalid
from shared.models import DEAD_LETTER_REASONS, DeadLetter


@click.group("dead-letters")
def dead_letters() -> None:
    """Broker messages the workers refused: not JSON, not a task message, unknown task, bad arguments."""


@dead_letters.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1), help="Newest N.")
@click.option("--reason", type=click.Choice(DEAD_LETTER_REASONS), help="Only this reason.")
@JSON_FLAG
@WIDE_FLAG
@pass_cli
def list_dead_letters(ctx: CliContext, limit: int, reason: str | None, as_json: bool, wide: bool) -> None:
    """The newest dead letters first: when, from which queue, which task, why, how big."""
    query = select(DeadLetter).order_by(DeadLetter.received_at.desc(), DeadLetter.id).limit(limit)
    if reason:
        query = query.where(DeadLetter.reason == reason)
    with ctx.session_factory() as session:
        rows = list(session.scalars(query))
    if as_json:
        print_json([_summary(row) for row in rows])
        return
    if not rows:
        click.echo("No dead letters.")
        return
    table = Table(title="Dead letters (details: pilot dead-letters show ID)")
    table.add_column("id", no_wrap=True)
    table.add_column("received (UTC)", no_wrap=True)
    for name in ("queue", "task", "reason"):
        table.add_column(name, overflow="fold")
    table.add_column("size", justify="right", no_wrap=True)
    for row in rows:
        # Text cells: queue and task name come from the refused message, never read as markup.
        table.add_row(
            str(row.id),
            _time(row.received_at),
            Text(row.queue or ""),
            Text(row.task_name or ""),
            row.reason,
            f"{row.body_size} B",
        )
    print_table(ctx.console, table, wide=wide)


@dead_letters.command("show")
@click.argument("dead_letter_id")
@JSON_FLAG
@pass_cli
def show_dead_letter(ctx: CliContext, dead_letter_id: str, as_json: bool) -> None:
    """Every field of one dead letter; the body as text if it is UTF-8, else as base64."""
    try:
        key = uuid.UUID(dead_letter_id)
    except ValueError:
        raise PayloadInvalid("DEAD_LETTER_ID: expected the id column of `pilot dead-letters list`") from None
    with ctx.session_factory() as session:
        row = session.get(DeadLetter, key)
    if row is None:
        raise NotFound(f"no dead letter with id {key}")
    if as_json:
        print_json(_summary(row) | _body(row))
        return
    fields = {
        "id": str(row.id),
        "received": _time(row.received_at),
        "recorded": _time(row.recorded_at),
        "reason": row.reason,
        "detail": row.detail,
        "queue": row.queue,
        "exchange": row.exchange,
        "task": row.task_name,
        "message id": row.message_id,
        "content type": row.content_type,
        "content encoding": row.content_encoding,
        "body size": f"{row.body_size} bytes"
        + ("" if row.body_size == len(row.body) else f" ({len(row.body)} kept)"),
        "body sha256": row.body_sha256,
    }
    for name, value in fields.items():
        click.echo(f"{name + ':':<18}{'' if value is None else value}")
    click.echo("headers:")
    click.echo(json.dumps(row.headers, indent=2, ensure_ascii=False, sort_keys=True))
    try:
        text = row.body.decode("utf-8")
    except UnicodeDecodeError:
        click.echo("body (base64, not UTF-8):")
        click.echo(base64.b64encode(row.body).decode("ascii"))
    else:
        click.echo("body (UTF-8):")
        click.echo(text)


def _summary(row: DeadLetter) -> dict[str, Any]:
    """A dead letter for ``--json``, without its headers and body."""
    return {
        "id": row.id,
        "received_at": row.received_at,
        "recorded_at": row.recorded_at,
        "reason": row.reason,
        "detail": row.detail,
        "queue": row.queue,
        "exchange": row.exchange,
        "task": row.task_name,
        "message_id": row.message_id,
        "content_type": row.content_type,
        "content_encoding": row.content_encoding,
        "body_size": row.body_size,
        "body_kept": len(row.body),
        "body_sha256": row.body_sha256,
    }


def _body(row: DeadLetter) -> dict[str, Any]:
    """Headers and body for ``--json``: the body as text if it is UTF-8, else as base64."""
    try:
        return {"headers": row.headers, "body_encoding": "utf-8", "body": row.body.decode("utf-8")}
    except UnicodeDecodeError:
        return {
            "headers": row.headers,
            "body_encoding": "base64",
            "body": base64.b64encode(row.body).decode("ascii"),
        }


def _time(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}"
