"""The demo's report: every email accounted for, delivery figures, suppression list, budget use."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.models import MessageStatus, Suppression, Task
from shared.rate_limit import ConnectorLimits, RateLimiter
from shared.reputation import guard
from shared.sending.ledger import count_by_status
from shared.settings import Settings
from shared.webhook_events import event_counts

#: Statuses the demo waits for a message to leave by itself. Unlike ``OPEN_STATUSES`` it leaves
#: ``deferred`` out: a deferred row may wait for an hour's budget, longer than a demo should.
STILL_MOVING = (MessageStatus.QUEUED, MessageStatus.SENDING)


@dataclass
class DemoReport:
    """What the demo shows at the end (also written as JSON for the tests)."""

    recipients: int
    ledger: dict[str, int]
    delivery: dict[str, Any]
    suppression_list: dict[str, list[str]]
    usage: dict[str, dict[str, int]]
    webhook_events: dict[str, int]
    follow_up: dict[str, int] = field(default_factory=dict)
    sandbox: dict[str, Any] = field(default_factory=dict)
    #: The reputation guard's view of the organization (``pilot reputation``), and what it held.
    reputation: dict[str, Any] = field(default_factory=dict)
    #: The one-click unsubscribes a mailbox provider posted (see :mod:`shared.demo.one_click`).
    unsubscribe: dict[str, Any] = field(default_factory=dict)
    #: The outcome events the shop's queue received (see :mod:`shared.demo.outcomes`).
    outcomes: dict[str, Any] = field(default_factory=dict)

    @property
    def accounted(self) -> int:
        return sum(self.ledger.values())

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-friendly data."""
        return {**asdict(self), "accounted": self.accounted}


def webhook_counts(session: Session) -> dict[str, int]:
    """Stored webhook events: total, processed, waiting, orphaned."""
    counts = event_counts(session)
    return {
        "stored": counts.stored,
        "processed": counts.processed,
        "waiting": counts.waiting,
        "orphaned": counts.orphaned,
    }


def suppression_by_reason(session: Session, organization_id: uuid.UUID) -> dict[str, list[str]]:
    """The organization's suppressed addresses grouped by reason."""
    grouped: dict[str, list[str]] = {}
    rows = session.execute(
        select(Suppression.reason, Suppression.email)
        .where(Suppression.organization_id == organization_id)
        .order_by(Suppression.reason, Suppression.email)
    )
    for reason, email in rows:
        grouped.setdefault(reason, []).append(email)
    return grouped


def budget_usage(
    limiter: RateLimiter, connector_id: uuid.UUID, limits: ConnectorLimits
) -> dict[str, dict[str, int]]:
    """Hour and day usage of the connector, read from its token buckets."""
    usage = {}
    for period in ("hour", "day"):
        stats = limiter.get_usage_stats(connector_id, period, limits)
        usage[period] = {"used": stats.used, "limit": stats.limit, "remaining": stats.remaining}
    return usage


def collect(
    session: Session,
    *,
    task_id: uuid.UUID,
    organization_id: uuid.UUID,
    recipients: int,
    usage: dict[str, dict[str, int]],
) -> DemoReport:
    """Read the report's figures from PostgreSQL."""
    task = session.get(Task, task_id)
    delivery = dict((task.execution_result if task else {}).get("delivery", {}))
    return DemoReport(
        recipients=recipients,
        ledger=count_by_status(session, task_id=task_id),
        delivery=delivery,
        suppression_list=suppression_by_reason(session, organization_id),
        usage=usage,
        webhook_events=webhook_counts(session),
    )


def reputation(
    session: Session, settings: Settings, *, organization_id: uuid.UUID, task_id: uuid.UUID
) -> dict[str, Any]:
    """The guard's report on the organization, and the campaign's rows it holds."""
    entries = guard.report(session, settings, now=datetime.now(UTC))
    entry = next((e for e in entries if e["organization_id"] == str(organization_id)), {})
    return {**entry, "campaign_held": guard.held_rows(session, task_id=task_id)}


def render(report: DemoReport, console: Console) -> None:
    """Print the report as tables."""
    console.print(Panel(Group(_status_table(report), _delivery_table(report)), title="Campaign report"))
    if report.reputation:
        console.print(Panel(_reputation_group(report.reputation), title="Reputation guard"))
    if report.outcomes:
        console.print(Panel(_outcomes_group(report.outcomes), title="Outcome events"))
    console.print(Panel(_suppression_table(report), title="Suppression list"))
    if report.unsubscribe:
        console.print(Panel(_unsubscribe_table(report), title="One-click unsubscribe (RFC 8058)"))
    console.print(Panel(_usage_table(report), title="Connector budget"))
    verdict = "every email accounted for" if report.accounted == report.recipients else "MISSING EMAILS"
    console.print(
        f"[bold]{report.accounted} of {report.recipients} recipients have a result: {verdict}.[/bold]"
    )


def _status_table(report: DemoReport) -> Table:
    table = Table("ledger status", "messages", title="Send ledger", caption="one row per recipient")
    for status, count in sorted(report.ledger.items(), key=lambda item: -item[1]):
        table.add_row(status, str(count))
    return table


def _delivery_table(report: DemoReport) -> Table:
    table = Table("event", "messages", title="Delivery (webhooks)", caption="distinct messages")
    names = [
        "sent",
        "delivered",
        "opened_unique",
        "clicked_unique",
        "bounced",
        "complained",
        "delayed",
        "suppressed",
        "failed",
    ]
    for name in names:
        table.add_row(name.replace("_unique", ""), str(report.delivery.get(name, 0)))
    held = report.reputation.get("campaign_held", 0)
    table.add_row("deferred (budget)", str(report.ledger.get("deferred", 0) - held))
    table.add_row("deferred (reputation guard)", str(held))
    if report.follow_up:
        table.add_row(
            "follow-up skipped", f"{report.follow_up['suppressed']} of {report.follow_up['sent_to']}"
        )
    return table


def _unsubscribe_table(report: DemoReport) -> Table:
    found = report.unsubscribe
    header = found.get("header", {})
    table = Table("", "", title=f"The campaign's topic: {found.get('topic')}", show_header=False)
    for name, value in header.items():
        table.add_row(name, value[:60] + ("..." if len(value) > 60 else ""))
    for post in found.get("posts", []):
        table.add_row("POST one-click", f"{post['recipient']}: {post['status']}")
    table.add_row(
        "left the topic", f"{found.get('left_topic', 0)} address(es); other mail still reaches them"
    )
    table.add_row("unsubscribed (task metrics)", str(report.delivery.get("unsubscribed", 0)))
    return table


def _suppression_table(report: DemoReport) -> Table:
    table = Table("reason", "addresses", "examples")
    for reason, emails in report.suppression_list.items():
        table.add_row(reason, str(len(emails)), ", ".join(emails[:3]) + (" ..." if len(emails) > 3 else ""))
    return table


def _usage_table(report: DemoReport) -> Table:
    table = Table("window", "used", "limit", "remaining")
    for period, stats in report.usage.items():
        table.add_row(period, str(int(stats["used"])), str(int(stats["limit"])), str(int(stats["remaining"])))
    return table


def _reputation_group(entry: dict[str, Any]) -> Group:
    thresholds = entry.get("thresholds", {})
    table = Table("scope", "state", "recipients", "hard bounces", "complaints", title="Rates and state")
    for scope in entry.get("scopes", []):
        rates = scope["rates"]
        table.add_row(
            scope["scope"],
            scope["state"],
            str(rates["recipients"]),
            f"{rates['hard_bounces']} ({_pct(rates['bounce_rate'])})",
            f"{rates['complaints']} ({_pct(rates['complaint_rate'])})",
        )
    after = entry.get("after_the_guard", {})
    waited = Table("after the campaign", "ledger", title="What the guard held, and what still went")
    for name in ("newsletter", "receipt"):
        waited.add_row(
            f"{name} ({'bulk' if name == 'newsletter' else 'transactional'})", _ledger(after.get(name))
        )
    waited.add_row(
        "newsletter rows held by the guard", str(after.get("newsletter_held_by_guard", {}).get("deferred", 0))
    )
    waited.add_row("campaign rows held by the guard", str(entry.get("campaign_held", 0)))
    lines = [
        f"organization state: [bold]{entry.get('state', 'ok')}[/bold]; pause at "
        f"{_pct(thresholds.get('pause_bounce_rate'))} hard bounces or "
        f"{_pct(thresholds.get('pause_complaint_rate'))} complaints from "
        f"{thresholds.get('min_volume')} recipients; lift with "
        f"`pilot reputation resume --org {entry.get('organization_id')}`",
        *(f"{event['action']}: {event['reason'] or ''}" for event in reversed(entry.get("history", []))),
    ]
    return Group(table, waited, *lines)


def _outcomes_group(found: dict[str, Any]) -> Group:
    table = Table("reputation event", "scope", "reason", title=f"Reputation events on {found['queue']}")
    for event in found.get("reputation", []):
        table.add_row(event["kind"], event["scope"] or "-", event["reason"] or "")
    counts = ", ".join(f"{kind} {n}" for kind, n in found.get("counts", {}).items()) or "none"
    return Group(table, f"every event the queue received: {counts}")


def _ledger(counts: dict[str, int] | None) -> str:
    return ", ".join(f"{status} {n}" for status, n in sorted((counts or {}).items())) or "-"


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.2f} %"
