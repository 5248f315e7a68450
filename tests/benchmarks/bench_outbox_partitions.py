"""What partitioning the outbox (``outcome_events``, revision 0021) costs its writers: ledger rows that
name an outcomes queue inserted then marked sent, in batches as the worker does (each change writes
one event through the trigger), over the unpartitioned outbox (revision 0020) and the partitioned one
(head), each holding ``--events`` older events first (spread over 7 days). A database of its own per
revision, dropped after.

    .venv/bin/python tests/benchmarks/bench_outbox_partitions.py [--rows 20000] [--events 200000]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import psycopg

from shared import migrations
from tests.conftest import create_database, drop_database
from tests.raw_connections import connect

BATCH = 100

_OLDER_EVENTS = """
INSERT INTO outcome_events (id, message_id, queue, kind, created_at, published_at)
SELECT gen_random_uuid(), gen_random_uuid(), 'bench', 'sent',
       now() - make_interval(secs => g %% 604800), now()
FROM generate_series(1, %(events)s) AS g
"""
# The 7 days before today as maintenance would have made them (the migration makes today onwards).
_PAST_DAYS = """
DO $$
DECLARE day date;
BEGIN
    FOR n IN 1..7 LOOP
        day := (now() AT TIME ZONE 'UTC')::date - n;
        EXECUTE format('CREATE TABLE outcome_events_p%s PARTITION OF outcome_events'
                       ' FOR VALUES FROM (%L) TO (%L)',
                       to_char(day, 'YYYYMMDD'), day::text || ' 00:00+00', (day + 1)::text || ' 00:00+00');
    END LOOP;
END $$
"""
_ROWS = """
INSERT INTO email_messages (organization_id, connector_id, idempotency_key, recipient, status, outcomes_queue)
SELECT %(org)s, %(connector)s, 'bench/' || %(batch)s || '/' || g, 'r' || g || '@x.test', 'queued', 'bench'
FROM generate_series(1, %(size)s) AS g
"""
_SENT = "UPDATE email_messages SET status = 'sent', attempts = 1 WHERE idempotency_key LIKE %(prefix)s"


def run(revision: str, rows: int, events: int) -> tuple[float, float]:
    """Milliseconds per 1000 rows inserted, and per 1000 rows marked sent, at ``revision``."""
    name = f"bench_outbox_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        migrations.upgrade(url, revision)
        with connect(url) as conn:
            if revision != "0020":
                conn.execute(_PAST_DAYS)
            conn.execute(_OLDER_EVENTS, {"events": events})
            conn.execute("ANALYZE outcome_events")
            org = one(conn, "INSERT INTO organizations (name) VALUES ('bench') RETURNING id")
            connector = one(
                conn, "INSERT INTO connectors (organization_id, name) VALUES (%s, 'c') RETURNING id", (org,)
            )
            inserting = marking = 0.0
            for batch in range(rows // BATCH):
                started = time.perf_counter()
                conn.execute(_ROWS, {"org": org, "connector": connector, "batch": batch, "size": BATCH})
                inserting += time.perf_counter() - started
                started = time.perf_counter()
                conn.execute(_SENT, {"prefix": f"bench/{batch}/%"})
                marking += time.perf_counter() - started
            written = one(
                conn,
                "SELECT count(*) FROM outcome_events WHERE queue = 'bench' AND message_id IN"
                " (SELECT id FROM email_messages)",
            )
            assert written == 2 * (rows // BATCH) * BATCH, written
    finally:
        drop_database(name)
    per_thousand = 1000 / ((rows // BATCH) * BATCH)
    return inserting * 1000 * per_thousand, marking * 1000 * per_thousand


def one(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> Any:
    found = conn.execute(sql, params).fetchone()
    assert found is not None
    return found[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    print(
        f"{args.rows} ledger rows (each: queued event on insert, sent event on update), "
        f"{args.events} older events, batches of {BATCH}"
    )
    for label, revision in (("unpartitioned (0020)", "0020"), ("partitioned by day (head)", "head")):
        inserting, marking = run(revision, args.rows, args.events)
        print(f"{label:28} insert {inserting:7.1f} ms / 1000 rows   mark sent {marking:7.1f} ms / 1000 rows")


if __name__ == "__main__":
    main()
