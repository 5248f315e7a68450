"""``pilot ledger roll-up``: rewrite the ledger's daily rollups of chosen days (those before the
rollups existed, or a night beat missed)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import click

from shared.cli.context import CliContext, pass_cli
from shared.cli.output import JSON_FLAG, print_json
from shared.errors import PayloadInvalid
from shared.partitions.ledger_rollups import roll_up_days


@click.group()
def ledger() -> None:
    """The send ledger's daily rollups."""


@ledger.command("roll-up")
@click.option("--from", "first", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First UTC day.")
@click.option("--to", "last", type=click.DateTime(["%Y-%m-%d"]), help="Last UTC day (default: yesterday).")
@JSON_FLAG
@pass_cli
def roll_up(ctx: CliContext, first: datetime, last: datetime | None, as_json: bool) -> None:
    """Rewrite the rollups of the days --from to --to from the ledger rows created those days, one day
    at a time (what beat does nightly for the last two)."""
    today = datetime.now(UTC).date()
    end: date = last.date() if last else today - timedelta(days=1)
    if first.date() > end:
        raise PayloadInvalid(f"--from {first.date()} is after --to {end}")
    if end > today:
        raise PayloadInvalid(f"--to {end} is after today ({today}, UTC)")
    days = roll_up_days(ctx.engine, first.date(), end)
    if as_json:
        print_json({"rolled_up": [day.isoformat() for day in days]})
        return
    click.echo(f"Rolled up {len(days)} day(s): {days[0]} to {days[-1]}.")
