"""``pilot demo`` and ``pilot sandbox``: the whole loop locally, and the Resend sandbox alone."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from shared.cli.context import CliContext, pass_cli
from shared.demo.runner import DemoError, DemoOptions, run_demo


@click.command()
@click.option(
    "--database", default=DemoOptions.database_name, show_default=True, help="Database to (re)create."
)
@click.option("--redis-url", default=DemoOptions.redis_url, show_default=True, help="Broker and buckets.")
@click.option(
    "--json-report", type=click.Path(dir_okay=False, path_type=Path), help="Also write the report as JSON."
)
@pass_cli
def demo(ctx: CliContext, database: str, redis_url: str, json_report: Path | None) -> None:
    """Run sandbox, receiver, worker and beat, send a demo campaign and print the report."""
    options = DemoOptions(database_name=database, redis_url=redis_url, json_report=json_report)
    try:
        result = run_demo(options, ctx.console)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    if result.accounted != result.recipients:
        raise click.ClickException(f"only {result.accounted} of {result.recipients} emails have a result")


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def sandbox(args: tuple[str, ...]) -> None:
    """Run the local Resend-compatible sandbox (`pilot sandbox --help` lists its switches)."""
    # The sandbox is its own application: run it as `python -m sandbox` rather than importing it here.
    os.execv(sys.executable, [sys.executable, "-m", "sandbox", *args])
