"""The ``pilot`` command line. Errors are one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import sys
from typing import Any

import click
from sqlalchemy.exc import DBAPIError

from shared.cli.cancel import cancel_command
from shared.cli.connectors import connector
from shared.cli.context import CliContext
from shared.cli.db import db
from shared.cli.dead_letters import dead_letters
from shared.cli.demo import demo, sandbox
from shared.cli.erase import erase_command
from shared.cli.failures import describe_database_error
from shared.cli.keys import keys
from shared.cli.ledger import ledger
from shared.cli.operations import events, send, status, usage
from shared.cli.orgs import org
from shared.cli.output import printable, printable_lines
from shared.cli.reputation import reputation
from shared.cli.schema import schema
from shared.cli.suppressions import suppression
from shared.cli.tasks import tasks
from shared.errors import PilotError
from shared.logs import configure_cli_logging


class PilotGroup(click.Group):
    """A group that turns domain and database errors into one clear line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PilotError as exc:
            raise click.ClickException(printable_lines(exc)) from None
        except DBAPIError as exc:
            cli_context = ctx.find_object(CliContext)
            url = cli_context.database_url if cli_context is not None else None
            raise click.ClickException(printable(describe_database_error(exc, url))) from None


@click.group(cls=PilotGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Marketing Pilot connectors: send email through Resend with shared budgets."""
    cli_context = ctx.ensure_object(CliContext)
    ctx.call_on_close(cli_context.close)


for command in (db, keys, org, connector, suppression, send, usage, status, events, demo, sandbox):
    cli.add_command(command)
cli.add_command(dead_letters)
cli.add_command(reputation)
cli.add_command(cancel_command)
cli.add_command(schema)
cli.add_command(erase_command)
cli.add_command(tasks)
cli.add_command(ledger)


def main() -> None:
    """Console-script entry: run the CLI, turning domain errors into one line on stderr."""
    configure_cli_logging()
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except PilotError as exc:
        click.echo(f"error: {printable_lines(exc)}", err=True)
        sys.exit(1)
