"""``pilot tasks recount``: rebuild tasks' figures from their ledger and metric rows."""

from __future__ import annotations

import uuid

import click
from sqlalchemy import select

from shared.cli.context import CliContext, pass_cli
from shared.cli.output import JSON_FLAG, print_json
from shared.counters.recount import Recount, recount_task
from shared.errors import PayloadInvalid, TaskNotFound
from shared.models import Task


@click.group()
def tasks() -> None:
    """Tasks (campaigns) and their figures."""


@tasks.command("recount")
@click.option("--task", "task_id", help="Task id.")
@click.option("--all", "every", is_flag=True, help="Every task, one transaction each.")
@JSON_FLAG
@pass_cli
def recount(ctx: CliContext, task_id: str | None, every: bool, as_json: bool) -> None:
    """Rebuild the figures (sends by status, delivery) from scratch; say which were not what was kept."""
    if (task_id is None) == (not every):
        raise PayloadInvalid("name one task with --task, or --all")
    if every:
        with ctx.session_factory() as session:
            ids = list(session.scalars(select(Task.id).order_by(Task.id)))
    else:
        ids = [_task_id(task_id)]
    results: list[Recount] = []
    for one in ids:
        with ctx.transaction() as session:
            result = recount_task(session, one)
        if result is None:
            if not every:
                raise TaskNotFound(f"--task: no task with id {one}")
            continue
        results.append(result)
    if as_json:
        print_json([{"task_id": str(r.task_id), "changed": r.changed, **r.after} for r in results])
        return
    for result in results:
        sends = result.after.get("sends", {}).get("total", 0)
        events = result.after.get("delivery", {}).get("events", 0)
        verdict = "corrected" if result.changed else "unchanged"
        click.echo(f"task {result.task_id}: {sends} sends, {events} events, {verdict}")
    if every:
        click.echo(f"{len(results)} tasks, {sum(r.changed for r in results)} corrected")


def _task_id(value: str | None) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise PayloadInvalid("--task: not a UUID") from None
