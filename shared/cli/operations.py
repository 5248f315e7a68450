"""``pilot send``, ``usage``, ``status`` and ``events replay``: day-to-day operations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import connector_store as store
from shared import task_names
from shared.cli.context import CliContext, pass_cli
from shared.cli.output import cell
from shared.errors import PayloadInvalid
from shared.models import PRIORITIES, Connector, ConnectorUsage
from shared.rate_limit import RateLimiter
from shared.resend_schemas import parse_send_request
from shared.sending.ledger import count_by_status_and_priority
from shared.task_producer import TaskProducer, publish, publish_event_processing
from shared.webhook_events import event_counts, reopen_for_replay


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
) -> None:
    """Enqueue one email (pilot.send_email) and print the Celery task id."""
    with ctx.session_factory() as session:
        connector = store.get_connector(session, connector_id)
    sender = from_ or connector.config.get("default_from")
    if not sender:
        raise PayloadInvalid("from: give --from or set the connector's default_from")
    if html is None and text is None:
        raise PayloadInvalid("give --html or --text")
    email = {"from": sender, "to": list(recipients), "subject": subject, "html": html, "text": text}
    parse_send_request(
        {k: v for k, v in email.items() if v is not None}
    )  # refuse bad input before enqueueing
    kwargs: dict[str, Any] = {
        "connector_id": str(connector.id),
        "organization_id": str(connector.organization_id),
    }
    kwargs |= {k: v for k, v in email.items() if v is not None}
    kwargs |= {"idempotency_key": idempotency_key} if idempotency_key else {}
    producer = _producer(ctx)
    try:
        result = publish(producer, task_names.SEND_EMAIL, kwargs=kwargs)
    finally:
        producer.close()
    click.echo(result.id)


@click.command()
@click.argument("connector_id")
@pass_cli
def usage(ctx: CliContext, connector_id: str) -> None:
    """A connector's hour and day budget (live buckets) and its sends over the last 24 hours."""
    with ctx.session_factory() as session:
        connector = store.get_connector(session, connector_id)
        history = _hourly_usage(session, connector.id)
    config = store.validate_connector_config(connector.config)
    limits = config.limits()
    limiter = RateLimiter.from_settings(ctx.settings)
    table = Table("window", "used", "limit", "remaining", "reserved", "bulk may use", "full again in")
    for period in ("hour", "day"):
        stats = limiter.get_usage_stats(connector.id, period, limits)
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


@click.command()
@pass_cli
def status(ctx: CliContext) -> None:
    """Connectors, the send ledger by status, and webhook events waiting or orphaned."""
    with ctx.session_factory() as session:
        connectors = store.list_connectors(session)
        ledger = count_by_status_and_priority(session)
        events = event_counts(session)
    ctx.console.print(_connectors_table(connectors))
    messages = Table("status", "messages", *PRIORITIES, title="Send ledger")
    for name, counts in sorted(ledger.items(), key=lambda item: -sum(item[1].values())):
        messages.add_row(
            cell(name), str(sum(counts.values())), *(str(counts.get(priority, 0)) for priority in PRIORITIES)
        )
    ctx.console.print(messages)
    ctx.console.print(
        f"Webhook events: {events.stored} stored, {events.waiting} waiting, {events.orphaned} orphaned."
    )


def _connectors_table(connectors: list[Connector]) -> Table:
    table = Table("connector", "name", "status", "last checked", "last error", title="Connectors")
    for row in connectors:
        checked = f"{row.last_checked_at:%Y-%m-%d %H:%M}" if row.last_checked_at else "never"
        table.add_row(str(row.id), cell(row.name), cell(row.status), checked, cell(row.last_error or ""))
    return table


@click.group()
def events() -> None:
    """Stored webhook events."""


@events.command("replay")
@click.argument("event_ids", nargs=-1)
@click.option("--orphans", is_flag=True, help="Every event kept as an orphan.")
@click.option("--unprocessed", is_flag=True, help="Every event not processed yet.")
@click.option("--since", type=click.DateTime(), help="Every event received since (UTC).")
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
