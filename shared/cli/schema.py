"""``pilot schema``: the JSON Schemas of the task kwargs and of the outcome events, from the models."""

from __future__ import annotations

import json

import click

from marketing_pilot_client.schema import schema_text, task_schemas


@click.command("schema")
@click.argument("task", required=False, type=click.Choice(list(task_schemas())))
def schema(task: str | None) -> None:
    """Print the JSON Schema of TASK's kwargs, or of every task as one object keyed by task name."""
    if task is not None:
        click.echo(schema_text(task), nl=False)
    else:
        click.echo(json.dumps(task_schemas(), indent=2, ensure_ascii=False))
