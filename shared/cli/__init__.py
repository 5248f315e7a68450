"""The ``pilot`` command line. Errors are one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import sys

import click

from shared.cli.db import db
from shared.cli.keys import keys
from shared.errors import PilotError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Marketing Pilot connectors: send email through Resend with shared budgets."""


cli.add_command(db)
cli.add_command(keys)


def main() -> None:
    """Console-script entry: run the CLI, turning domain errors into one line on stderr."""
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
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
