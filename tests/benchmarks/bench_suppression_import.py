"""``pilot suppression import`` of a large CSV into an empty list, then again over the same entries.

The import runs through the CLI entry point (reading, validating and writing, as an operator runs
it) against a database of its own. Printed: seconds and lines/s of the first import (every row new)
and of the second (every row an update of an existing entry).

    .venv/bin/python tests/benchmarks/bench_suppression_import.py [LINES]   # default 100000
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shared import migrations
from shared.cli import cli
from shared.settings import get_settings
from tests.conftest import create_database, drop_database

DEFAULT_LINES = 100_000
REASONS = ("manual", "unsubscribed", "hard_bounce", "spam_complaint")


def write_csv(path: Path, lines: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("email,reason,expires_at\n")
        for n in range(lines):
            expires = "2099-01-01T00:00:00+00:00" if n % 5 == 0 else ""
            out.write(f"Reader.{n}@Example{n % 97}.com,{REASONS[n % len(REASONS)]},{expires}\n")


def timed_import(runner: CliRunner, organization_id: str, path: Path) -> tuple[float, str]:
    started = time.perf_counter()
    result = runner.invoke(cli, ["suppression", "import", "--org", organization_id, str(path)])
    elapsed = time.perf_counter() - started
    if result.exit_code != 0:
        raise SystemExit(f"import failed: {result.output}")
    return elapsed, result.output.strip()


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_LINES
    name = f"pilot_bench_suppr_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    try:
        migrations.upgrade(url)
        runner = CliRunner()
        created = runner.invoke(cli, ["org", "create", "Bench"])
        organization_id = created.output.strip()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "list.csv"
            write_csv(path, lines)
            for label in ("new entries", "existing entries"):
                elapsed, output = timed_import(runner, organization_id, path)
                rate = lines / elapsed
                print(f"{label:>17}: {lines} lines in {elapsed:.2f} s = {rate:,.0f} lines/s ({output})")
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
