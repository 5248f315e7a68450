"""How late scheduled sends reach Resend: a real worker and ``celery beat`` (release every second),
the sandbox recording when each request arrived.

``SENDS`` single sends are scheduled 3 s ahead, a quarter of a second apart (so release rounds
fall at every point of beat's second); prints the lateness (arrival at the sandbox minus
``scheduled_at``): minimum, median, 95th percentile and maximum. A negative figure would be a send
that left early. The machine is shared: figures are noisy.

    .venv/bin/python tests/benchmarks/bench_schedule.py [sends]
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shared import migrations, task_names
from shared.db import make_engine, make_sessionmaker
from shared.settings import load_settings
from tests.conftest import create_database, drop_database
from tests.sandbox_process import running_sandbox
from tests.send_helpers import add_connector, send_payload
from tests.worker_process import isolated_redis_db, running_beat, running_worker, worker_env
from worker.celery_app import make_celery

SENDS = int(sys.argv[1]) if len(sys.argv) > 1 else 40
AHEAD_S = 3.0
SPACING_S = 0.25
TIMEOUT_S = 120.0


def main() -> None:
    name = f"pilot_bench_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        migrations.upgrade(url)
        with running_sandbox(rate_limit_per_second=0) as sandbox, isolated_redis_db() as db:
            env = worker_env(database_url=url, redis_db=db, resend_base_url=sandbox.url)
            settings = load_settings(database_url=url, redis_url=env["REDIS_URL"])

            engine = make_engine(settings)
            _, connector_id = add_connector(make_sessionmaker(engine))
            app = make_celery(settings)
            with running_worker(env, concurrency=2), running_beat(env):
                time.sleep(5)  # beat's start-up: its first rounds are not measured
                scheduled: dict[str, datetime] = {}
                for n in range(SENDS):
                    to = f"bench-{n:03d}-{uuid.uuid4().hex[:6]}@example.test"
                    at = datetime.now(UTC) + timedelta(seconds=AHEAD_S)
                    payload = send_payload(connector_id, to, scheduled_at=at.isoformat())
                    app.send_task(
                        task_names.SEND_EMAIL, kwargs=payload, queue=task_names.PRIORITY_SENDS_QUEUE
                    )
                    scheduled[to] = at
                    time.sleep(SPACING_S)
                deadline = time.monotonic() + TIMEOUT_S
                arrived: dict[str, float] = {}
                while len(arrived) < SENDS and time.monotonic() < deadline:
                    arrived = {
                        e["to"][0]: e["created_at"] for e in sandbox.emails() if e["to"][0] in scheduled
                    }
                    time.sleep(0.5)
            app.close()
            engine.dispose()
        late = sorted(arrived[to] - at.timestamp() for to, at in scheduled.items() if to in arrived)
        p95 = late[min(len(late) - 1, int(len(late) * 0.95))]
        print(
            f"{len(late)}/{SENDS} scheduled sends {AHEAD_S:.0f} s ahead, lateness at the sandbox: "
            f"min {late[0]:+.3f} s, median {statistics.median(late):+.3f} s, p95 {p95:+.3f} s, "
            f"max {late[-1]:+.3f} s (beat releases every 1 s)"
        )
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
