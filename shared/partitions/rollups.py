"""Daily per-task and per-connector totals of ``email_metrics`` (``metric_rollups``), written from a
partition just before retention drops it, in the same transaction: the totals outlive the rows."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text

from shared.models import RollupScope

if TYPE_CHECKING:
    from shared.partitions.tables import Partition

_ROLLUP = """
INSERT INTO metric_rollups (scope, scope_id, day, event, events, messages)
SELECT :scope, {column}, (occurred_at AT TIME ZONE 'UTC')::date, event, count(*), count(DISTINCT message_id)
FROM {partition}
WHERE {column} IS NOT NULL
GROUP BY {column}, (occurred_at AT TIME ZONE 'UTC')::date, event
ON CONFLICT (scope, scope_id, day, event)
DO UPDATE SET events = EXCLUDED.events, messages = EXCLUDED.messages
"""
_COLUMNS = {RollupScope.TASK: "task_id", RollupScope.CONNECTOR: "connector_id"}


def roll_up_metrics(connection: Connection, partition: Partition, now: datetime) -> None:
    """Write the daily totals of the ``email_metrics`` partition ``partition`` (whole UTC days: a
    partition holds whole days, so a day's totals come from one partition and a rerun rewrites them).
    ``now`` is not needed: totals are of the rows, whenever written."""
    for scope, column in _COLUMNS.items():
        statement = _ROLLUP.format(column=column, partition=partition.name)
        connection.execute(text(statement), {"scope": scope.value})
