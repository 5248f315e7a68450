"""``pilot send``, ``usage``, ``status`` and ``events list / replay``: day-to-day operations."""

from __future__ import annotations

import base64
import mimetypes
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import connector_store as store
from shared import task_names, webhook_events
from shared.cli.connectors import connector_record
from shared.cli.context import CliContext, pass_cli
from shared.cli.output import JSON_FLAG, WIDE_FLAG, cell, print_json, print_table
from shared.cli.params import ISO_TIME
from shared.errors import PayloadInvalid
from shared.models import PRIORITIES, Connector, ConnectorUsage
from shared.partitions.ledger_rollups import LedgerTotals, totals
from shared.rate_limit import RateLimiter
from shared.resend_events import RESEND_EVENT_TYPES
from shared.sending.ledger import count_waiting, sent_since
from shared.sending.payloads import parse_send_email
from shared.task_producer import TaskProducer, publish, publish_event_processing
from shared.webhook_events import DEFAULT_LIST_LIMIT, EventState, event_backlog, reopen_for_replay


def _producer(ctx: CliContext) -> TaskProducer:
    return TaskProducer(ctx.settings.broker_url)


@click.command()
@click.option("--connector", "connector_id", required=True, help="Connector id.")
@click.option("--to", "recipients", multiple=True, required=True, help="Recipient (repeatable).")
@click.option("--subject", required=True)
@click.option("--html", help="HTML body.")
@click.option("--text", help="Plain-text body.")
@click.option("--from", "from_", help="Sender; defaults to the connector's default_from.")
@click.option("--idempotency-key", help="Your key: sending twice with it sends once.")
@click.option(
    "--scheduled-at", help="When to send: ISO 8601 with its offset (Z for UTC), at most 30 days ahead."
)
@click.option(
    "--attach",
    "attach",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, readable=True),
    help="Attach a file (repeatable); its content type is guessed from its name.",
)
@click.option(
    "--inline",
    "inline",
    multiple=True,
    type=click.Tuple([click.Path(exists=True, dir_okay=False, readable=True), str]),
    metavar="FILE CID",
    help='Attach an image the HTML shows inline as <img src="cid:CID"> (repeatable).',
)
@pass_cli
def send(
    ctx: CliContext,
    connector_id: str,
    recipients: tuple[str, ...],
    subject: str,
    html: str | None,
    text: str | None,
    from_: str | None,
    idempotency_key: str | None,
    scheduled_at: str | None,
    attach: tuple[str, ...],
    inline: tuple[tuple[str, str], ...],
) -> None:
    """Enqueue one email (pilot.send_email) and print the Celery task id.

    The email is checked first by the rule the worker applies to the task (sender, recipients,
    idempotency key...): what the worker would refuse is never enqueued.
    """
    with ctx.session_factory() as session:
        connector = store.get_connector(session, connector_id)
    sender = from_ or connector.config.get("default_from")
    if not sender:
        raise PayloadInvalid("--from: give it or set the connector's default_from")
    if html is None and text is None:
        raise PayloadInvalid("give --html or --text")
    email = {
        "from": sender,
        "to": list(recipients),
        "subject": subject,
        "html": html,
        "text": text,
        "idempotency_key": idempotency_key,
        "scheduled_at": scheduled_at,
        "attachments": [
            *(_attachment(Path(path)) for path in attach),
            *(_attachment(Path(path)) | {"content_id": cid} for path, cid in inline),
        ]
        or None,
    }
    kwargs: dict[str, Any] = {
        "connector_id": str(connector.id),
        "organization_id": str(connector.organization_id),
    }
    kwargs |= {k: v for k, v in email.items() if v is not None}
    try:
        parse_send_email(kwargs)
    except PayloadInvalid as exc:
        raise PayloadInvalid(f"not enqueued: {exc}") from None
    producer = _producer(ctx)
    try:
        result = publish(producer, task_names.SEND_EMAIL, kwargs=kwargs)
    finally:
        producer.close()
    click.echo(result.id)


def _attachment(path: Path) -> dict[str, str]:
    """A file as a base64 attachment, named by its file name."""
    attachment = {"filename": path.name, "content": base64.b64encode(path.read_bytes()).decode("ascii")}
    content_type, _ = mimetypes.guess_type(path.name)
    return attachment | ({"content_type": content_type} if content_type else {})


@click.command()
@click.argument("connector_id")
@JSON_FLAG
@pass_cli
def usage(ctx: CliContext, connector_id: str, as_json: bool) -> None:
    """A connector's hour and day budget (live buckets) and its sends over the last 24 hours."""
    with ctx.session_factory() as session:
        connector = store.get_connector(session, connector_id)
        history = _hourly_usage(session, connector.id)
    config = store.validate_connector_config(connector.config)
    limits = config.limits()
    limiter = RateLimiter.from_settings(ctx.settings)
    windows = {period: limiter.get_usage_stats(connector.id, period, limits) for period in ("hour", "day")}
    if as_json:
        print_json(
            {
                "connector_id": connector.id,
                "windows": [
                    {
                        "window": period,
                        "used": stats.used,
                        "limit": stats.limit,
                        "remaining": stats.remaining,
                        "reserved": stats.reserved,
                        "bulk_remaining": stats.bulk_remaining,
                        "full_again_in_s": round(stats.resets_in, 3),
                    }
                    for period, stats in windows.items()
                ],
                "last_24_hours": [
                    {"hour": row.hour, "emails": row.emails_sent, "requests": row.requests} for row in history
                ],
            }
        )
        return
    table = Table("window", "used", "limit", "remaining", "reserved", "bulk may use", "full again in")
    for period, stats in windows.items():
        table.add_row(
            period,
            str(stats.used),
            str(stats.limit),
            str(stats.remaining),
            str(stats.reserved),
            str(stats.bulk_remaining),
            f"{stats.resets_in:.0f}s",
        )
    ctx.console.print(table)
    hours = Table("hour (UTC)", "emails", "requests", title="Last 24 hours")
    for row in history:
        hours.add_row(f"{row.hour:%Y-%m-%d %H:00}", str(row.emails_sent), str(row.requests))
    ctx.console.print(hours)


def _hourly_usage(session: Session, connector_id: uuid.UUID) -> list[ConnectorUsage]:
    since = datetime.now(UTC) - timedelta(hours=24)
    query = select(ConnectorUsage).where(
        ConnectorUsage.connector_id == connector_id, ConnectorUsage.hour >= since
    )
    return list(session.scalars(query.order_by(ConnectorUsage.hour)))


#: ``pilot status`` totals the rollups of this many whole days before today.
STATUS_DAYS = 7


@click.command()
@JSON_FLAG
@WIDE_FLAG
@pass_cli
def status(ctx: CliContext, as_json: bool, wide: bool) -> None:
    """Connectors, the ledger's waiting rows by status, the emails sent in the last 24 hours, the
    emails of the last 7 whole days by status, and webhook events waiting or orphaned (each read from
    an index of what waits, from hourly usage or from the daily rollups, never from the ledger's
    history)."""
    now = datetime.now(UTC)
    with ctx.session_factory() as session:
        connectors = store.list_connectors(session)
        waiting = count_waiting(session)
        emails, requests = sent_since(session, now - timedelta(hours=24))
        days = totals(session, now.date() - timedelta(days=STATUS_DAYS), now.date() - timedelta(days=1))
        events = event_backlog(session)
    if as_json:
        print_json(
            {
                "connectors": [connector_record(row) for row in connectors],
                "ledger": {
                    name: {"total": sum(counts.values()), **counts} for name, counts in waiting.items()
                },
                "sent_last_24_hours": {"emails": emails, "requests": requests},
                "ledger_last_7_days": _totals_record(days),
                "webhook_events": {"waiting": events.waiting, "orphaned": events.orphaned},
            }
        )
        return
    print_table(ctx.console, _connectors_table(connectors), wide=wide)
    messages = Table("status", "messages", *PRIORITIES, title="Send ledger: rows waiting")
    for name, counts in waiting.items():
        messages.add_row(
            cell(name), str(sum(counts.values())), *(str(counts.get(priority, 0)) for priority in PRIORITIES)
        )
    ctx.console.print(messages)
    ctx.console.print(f"Sent in the last 24 hours: {emails} emails in {requests} requests.")
    ctx.console.print(_totals_table(days))
    ctx.console.print(_totals_source(days))
    ctx.console.print(f"Webhook events: {events.waiting} waiting, {events.orphaned} orphaned.")


def _totals_record(days: LedgerTotals) -> dict[str, Any]:
    return {
        "from": days.first.isoformat(),
        "to": days.last.isoformat(),
        "emails": days.emails,
        "by_status": days.by_status,
        "rolled_up_at": days.rolled_up_at.isoformat() if days.rolled_up_at else None,
    }


def _totals_table(days: LedgerTotals) -> Table:
    table = Table("status", "emails", title=f"Last {STATUS_DAYS} days: emails by status")
    for name, count in days.by_status.items():
        table.add_row(cell(name), str(count))
    table.add_row("total", str(days.emails))
    return table


def _totals_source(days: LedgerTotals) -> str:
    rolled = f"last rewritten {days.rolled_up_at:%Y-%m-%d %H:%M} UTC" if days.rolled_up_at else "none yet"
    return f"Emails created {days.first} to {days.last} (UTC), from the nightly ledger rollups ({rolled})."


def _connectors_table(connectors: list[Connector]) -> Table:
    table = Table("connector", "name", "status", "last checked", "last error", title="Connectors")
    for row in connectors:
        checked = f"{row.last_checked_at:%Y-%m-%d %H:%M}" if row.last_checked_at else "never"
        table.add_row(str(row.id), cell(row.name), cell(row.status), checked, cell(row.last_error or ""))
    return table


@click.group()
def events() -> None:
    """Stored webhook events."""


@events.command("list")
@click.option(
    "--status", "state", type=click.Choice([s.value for s in EventState]), help="Only events in this state."
)
@click.option(
    "--type",
    "event_type",
    type=click.Choice(list(RESEND_EVENT_TYPES)),
    help="Only this type (Resend's name).",
)
@click.option("--since", type=ISO_TIME, help="Only events received since (ISO 8601; UTC without an offset).")
@click.option(
    "--limit", default=DEFAULT_LIST_LIMIT, show_default=True, type=click.IntRange(min=1), help="Newest N."
)
@JSON_FLAG
@WIDE_FLAG
@pass_cli
def list_events(
    ctx: CliContext,
    state: str | None,
    event_type: str | None,
    since: datetime | None,
    limit: int,
    as_json: bool,
    wide: bool,
) -> None:
    """Stored webhook events, newest first, with their state (ids for `pilot events replay`)."""
    with ctx.session_factory() as session:
        rows = webhook_events.list_events(
            session,
            state=EventState(state) if state else None,
            event_type=event_type,
            since=since,
            limit=limit,
        )
    records = [
        {
            "id": row.id,
            "svix_id": row.svix_id,
            "type": row.type,
            "state": EventState.of(row),
            "received_at": row.received_at,
            "processed_at": row.processed_at,
            "attempts": row.attempts,
            "error": row.error,
        }
        for row in rows
    ]
    if as_json:
        print_json(records)
        return
    if not records:
        click.echo("No webhook events.")
        return
    table = Table("id", "received (UTC)", "type", "state", "attempts", "error", title="Webhook events")
    for record in records:
        table.add_row(
            str(record["id"]),
            f"{record['received_at']:%Y-%m-%d %H:%M:%S}",
            cell(record["type"]),
            str(record["state"]),
            str(record["attempts"]),
            cell(record["error"] or ""),
        )
    print_table(ctx.console, table, wide=wide)


@events.command("replay")
@click.argument("event_ids", nargs=-1)
@click.option("--orphans", is_flag=True, help="Every event kept as an orphan.")
@click.option("--unprocessed", is_flag=True, help="Every event not processed yet.")
@click.option("--since", type=ISO_TIME, help="Every event received since (ISO 8601; UTC without an offset).")
@pass_cli
def replay(
    ctx: CliContext, event_ids: tuple[str, ...], orphans: bool, unprocessed: bool, since: datetime | None
) -> None:
    """Process stored events again (idempotent: each adds at most one metric row)."""
    with ctx.transaction() as session:
        ids = reopen_for_replay(
            session, event_ids=event_ids, orphans=orphans, unprocessed=unprocessed, since=since
        )
    producer = _producer(ctx)
    try:
        for event_id in ids:
            publish_event_processing(producer, [str(event_id)])
    finally:
        producer.close()
    click.echo(f"Replaying {len(ids)} event(s).")
