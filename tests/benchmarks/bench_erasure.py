"""Erasure and the hashed suppression check on a large ledger.

A database of its own is migrated and loaded with ``--messages`` ledger rows in ``--tasks`` campaigns
and their metric rows (``tests/ledger_volume.py``, ``generate_series``: each recipient has one email
per campaign). Printed: milliseconds per suppression check of 100 addresses (``suppressed_reasons``,
what the pipeline asks: the function, and its query in the server by ``EXPLAIN ANALYZE``) with a
tenth of ``--entries`` suppression entries of the organization, then with all of them (half hashed);
and per ``erase`` of ``--people`` recipients (each its own committed transaction, with the rows it
changed). Nothing is asserted. The database is dropped at the end.

    .venv/bin/python tests/benchmarks/bench_erasure.py [--messages 1000000] [--tasks 20] [--people 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from shared import migrations
from shared.db import make_engine
from shared.erasure import erase
from shared.models import EmailMetric
from shared.sending.suppression_check import suppressed_reasons
from shared.settings import load_settings
from tests.conftest import create_database, drop_database
from tests.ledger_volume import LoadedLedger, analyze, load_ledger
from tests.query_plans import explain, statements_of

_ENTRIES = text("""
INSERT INTO suppression_list (organization_id, email, reason)
SELECT :organization_id,
    CASE WHEN g % 2 = 0 THEN 'listed' || g || '@example.test'
         ELSE 'sha256:' || md5(g::text) || md5(g::text) END,
    CASE WHEN g % 2 = 0 THEN 'manual' ELSE 'erased' END
FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS g
""")


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def time_erasures(engine: Engine, volume: LoadedLedger, people: int) -> tuple[list[float], int]:
    """Milliseconds per erasure of ``people`` recipients spread over the list, and the rows each changed."""
    step = max(1, volume.recipients_per_task // people)
    timings, changed = [], 0
    for number in range(0, step * people, step):
        with Session(engine) as session:
            session.connection()
            started = time.perf_counter()
            report = erase(
                session,
                volume.organization_id,
                volume.recipient(number),
                actor="bench",
                now=datetime.now(UTC),
            )
            session.commit()
            timings.append((time.perf_counter() - started) * 1000)
            changed = report.messages + report.metrics
    return timings, changed


def time_checks(engine: Engine, volume: LoadedLedger, runs: int = 20) -> tuple[list[float], list[float]]:
    """Milliseconds per suppression check of 100 addresses of the list (a batch's worth): the whole
    function, and its query in the server (``EXPLAIN ANALYZE``, the steadier figure on a busy machine)."""
    addresses = [(volume.recipient(number), None) for number in range(100)]
    wall, server = [], []
    with Session(engine) as session:
        suppressed_reasons(session, volume.organization_id, addresses)
        for _ in range(runs):
            started = time.perf_counter()
            [statement] = statements_of(
                session,
                lambda: suppressed_reasons(session, volume.organization_id, addresses),
                matching="suppression_list",
            )
            wall.append((time.perf_counter() - started) * 1000)
            server.append(explain(session, statement, analyze=True)["Execution Time"])
    return wall, server


def load_entries(engine: Engine, volume: LoadedLedger, first: int, last: int) -> None:
    """Suppression entries ``first`` to ``last`` of the organization (odd ones hashed), then ANALYZE."""
    with engine.connect() as connection:
        connection.execute(
            _ENTRIES, {"organization_id": volume.organization_id, "first": first, "last": last}
        )
        connection.commit()
        analyze(connection)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="ledger rows (default 1,000,000)")
    parser.add_argument("--tasks", type=int, default=20, help="campaigns they are split into (default 20)")
    parser.add_argument("--people", type=int, default=10, help="recipients erased (default 10)")
    parser.add_argument("--entries", type=int, default=200_000, help="suppression entries (default 200,000)")
    args = parser.parse_args()
    if args.messages <= 0 or args.tasks <= 0 or args.messages % args.tasks:
        parser.error("--messages and --tasks must be positive, --messages a multiple of --tasks")
    if not 0 < args.people <= args.messages // args.tasks:
        parser.error("--people must be between 1 and the recipients per campaign (--messages / --tasks)")

    name = f"pilot_bench_erasure_{uuid.uuid4().hex[:10]}"
    url = create_database(name)
    engine = make_engine(load_settings(database_url=url))
    try:
        migrations.upgrade(url)
        started = time.perf_counter()
        with engine.connect() as connection:
            volume = load_ledger(connection, messages=args.messages, tasks=args.tasks)
        with Session(engine) as session:
            metric_rows = session.scalar(select(func.count()).select_from(EmailMetric))
        loaded = time.perf_counter() - started
        print(
            f"ledger: {args.messages:,} messages in {args.tasks} campaigns, {metric_rows:,} metric rows;"
            f" loaded in {loaded:.0f} s"
        )
        loaded_entries = 0
        for entries in (args.entries // 10, args.entries):
            load_entries(engine, volume, loaded_entries + 1, entries)
            loaded_entries = entries
            wall, server = time_checks(engine, volume)
            print(
                f"suppression check of 100 addresses, {entries:,} entries (half hashed):"
                f" p50 {statistics.median(wall):.2f} ms (query in server {statistics.median(server):.2f} ms),"
                f" p95 {p95(wall):.2f} ms"
            )
        erasures, changed = time_erasures(engine, volume, args.people)
        print(
            f"erase one person ({changed} ledger and metric rows each):"
            f" p50 {statistics.median(erasures):.1f} ms, p95 {p95(erasures):.1f} ms over {args.people}"
        )
    finally:
        engine.dispose()
        drop_database(name)


if __name__ == "__main__":
    main()
