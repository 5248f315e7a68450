"""PLACEHOLDER (branch ledger-partitions): the real module, with the daily per-task and per-connector
totals of the ledger (``ledger_rollups``), is written on branch ``ledger-rollups``; on merging, take
that branch's version of this file whole. Until then nothing of the ledger is ever dropped: the hook
raises, and the dropping transaction is rolled back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection


def roll_up_ledger(connection: Connection, start: datetime, end: datetime) -> None:
    """Rewrite the ledger's daily totals of the UTC days in ``[start, end)`` (on branch ledger-rollups)."""
    raise NotImplementedError("shared.partitions.ledger_rollups lands from branch ledger-rollups")
