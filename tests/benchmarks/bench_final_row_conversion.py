"""What migration 0019 costs on a filled ledger: its time, and the ledger's bytes per row after it.

Loads ``--rows`` ledger rows at revision 0018 (bench_scale's generator, into a database of its own),
upgrades to 0019 (the trigger, every final row's ``dispatch_key`` cleared by page ranges, the task
indexes built concurrently) and prints how long it took and the ledger's size per row before and after.

    .venv/bin/python tests/benchmarks/bench_final_row_conversion.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import text

from shared import migrations
from shared.db import make_engine
from shared.settings import load_settings
from tests.benchmarks import bench_scale
from tests.conftest import create_database, drop_database

_SIZE = text("SELECT pg_total_relation_size('email_messages')")
_KEYED = text(
    "SELECT count(*) FROM email_messages WHERE dispatch_key IS NOT NULL"
    " AND status NOT IN ('scheduled', 'queued', 'deferred', 'sending')"
)


def measure(rows: int) -> None:
    name = f"pilot_bench_conversion_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        migrations.upgrade(url, "0018")
        bench_scale.load(url, rows)
        engine = make_engine(load_settings(database_url=url))
        with engine.connect() as connection:
            before = connection.execute(_SIZE).scalar_one()
        started = time.monotonic()
        migrations.upgrade(url, "0019")
        took = time.monotonic() - started
        with engine.connect() as connection:
            after, keyed = connection.execute(_SIZE).scalar_one(), connection.execute(_KEYED).scalar_one()
        engine.dispose()
    finally:
        drop_database(name)
    print(f"{rows:,} rows: 0018 -> 0019 in {took:.1f} s; final rows still keyed: {keyed}")
    print(f"ledger with its indexes: {before / rows:.0f} B/row before, {after / rows:.0f} B/row after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="ledger rows loaded at 0018")
    measure(parser.parse_args().rows)


if __name__ == "__main__":
    main()
