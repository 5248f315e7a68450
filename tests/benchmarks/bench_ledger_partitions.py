"""What partitioning the ledger by month costs and saves: the send claim's planning and run time over
the unpartitioned ledger (revision 0017), over 3 partitions (head as migrated) and over 15 (a year
and more of months), unprepared and prepared; and the bytes per email of the rows' marks, as two
tables (before 0018) and folded into one (``message_marks``). A database of its own, dropped after.

    .venv/bin/python tests/benchmarks/bench_ledger_partitions.py [--repeat 30] [--marks 200000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import psycopg

from shared import migrations
from shared.sending import queue
from tests.conftest import create_database, drop_database

#: Months added to the migrated ones (the current, the next) for a year and more of partitions.
MORE_MONTHS = 12

# Shaped as the two mark tables before revision 0018, and as the folded one after it.
_MARK_TABLES = {
    "delivery_marks (before)": "message_id uuid PRIMARY KEY, kinds int NOT NULL DEFAULT 0",
    "reputation_marks (before)": "message_id uuid PRIMARY KEY, bucket int NOT NULL,"
    " counted bool NOT NULL DEFAULT false, hard_bounce bool NOT NULL DEFAULT false,"
    " complaint bool NOT NULL DEFAULT false, campaign_bucket int",
    "message_marks (folded)": "message_id uuid, message_created_at timestamptz,"
    " kinds int NOT NULL DEFAULT 0, bucket int, counted bool NOT NULL DEFAULT false,"
    " hard_bounce bool NOT NULL DEFAULT false, complaint bool NOT NULL DEFAULT false, campaign_bucket int,"
    " PRIMARY KEY (message_id, message_created_at)",
}
_MARK_ROWS = {
    "delivery_marks (before)": "SELECT gen_random_uuid(), 3",
    "reputation_marks (before)": "SELECT gen_random_uuid(), 20000, true, false, false, 3",
    "message_marks (folded)": "SELECT gen_random_uuid(), now(), 3, 20000, true, false, false, 3",
}


def claim_costs(conn: psycopg.Connection[Any], repeat: int) -> tuple[float, float, float]:
    """Median planning and run time of an unprepared claim (EXPLAIN ANALYZE), and the median time of a
    claim once psycopg has prepared it (after five runs on the connection), in ms."""
    params = {"key": "k" * 20, "limit": 100, "now": datetime.now(UTC), "orphaned": 60}
    planning, running = [], []
    for _ in range(repeat):
        found = conn.execute("EXPLAIN (ANALYZE, SUMMARY, FORMAT JSON) " + queue._CLAIM, params).fetchone()
        assert found is not None
        planning.append(found[0][0]["Planning Time"])
        running.append(found[0][0]["Execution Time"])
    prepared = []
    for n in range(repeat + 5):
        start = time.perf_counter()
        with conn.transaction():
            queue.claim(conn, "k" * 20, limit=100, now=datetime.now(UTC), orphaned_after=60)
        if n >= 5:
            prepared.append((time.perf_counter() - start) * 1000)
    return statistics.median(planning), statistics.median(running), statistics.median(prepared)


def add_months(conn: psycopg.Connection[Any], months: int) -> None:
    """``months`` more monthly partitions of the ledger, before the ones migrated."""
    now = datetime.now(UTC)
    for back in range(1, months + 1):
        year, month = divmod(now.year * 12 + now.month - 1 - back, 12)
        after_year, after_month = divmod(year * 12 + month + 1, 12)
        conn.execute(
            f"CREATE TABLE email_messages_p{year}{month + 1:02d} PARTITION OF email_messages"
            f" FOR VALUES FROM ('{year}-{month + 1:02d}-01') TO ('{after_year}-{after_month + 1:02d}-01')"
        )


def partition_count(conn: psycopg.Connection[Any]) -> int:
    found = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'email_messages'::regclass")
    row = found.fetchone()
    return int(row[0]) if row else 0


def marks_bytes(conn: psycopg.Connection[Any], rows: int) -> None:
    for label, columns in _MARK_TABLES.items():
        conn.execute(f"CREATE TEMP TABLE bench_marks ({columns})")
        conn.execute(f"INSERT INTO bench_marks {_MARK_ROWS[label]} FROM generate_series(1, %s)", (rows,))
        conn.execute("VACUUM ANALYZE bench_marks")
        found = conn.execute("SELECT pg_total_relation_size('bench_marks')").fetchone()
        assert found is not None
        print(f"{label + ' bytes per email':>48s}: {found[0] / rows:9.0f}")
        conn.execute("DROP TABLE bench_marks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30, help="runs per measure (median)")
    parser.add_argument("--marks", type=int, default=200_000, help="mark rows per table")
    options = parser.parse_args()
    name = f"pilot_bench_ledger_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        migrations.upgrade(url, "0017")
        conninfo = url.replace("postgresql+psycopg://", "postgresql://")
        print("== the send claim on an empty queue (ms): planning, run, prepared")
        for label, step in (("unpartitioned (0017)", None), ("partitioned (0018)", 0), ("", MORE_MONTHS)):
            if step == 0:
                migrations.upgrade(url)
            with psycopg.connect(conninfo, autocommit=True) as conn:
                if step:
                    add_months(conn, step)
                where = label or "partitioned, a year more"
                if step is not None:
                    where = f"{where}, {partition_count(conn)} partitions"
                plan, run, prepared = claim_costs(conn, options.repeat)
                print(f"{where:>48s}: {plan:6.2f} {run:6.2f} {prepared:6.2f}", flush=True)
        print(f"== marks, {options.marks:,} rows each")
        with psycopg.connect(conninfo, autocommit=True) as conn:
            marks_bytes(conn, options.marks)
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
