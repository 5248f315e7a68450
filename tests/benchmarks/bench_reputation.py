"""The reputation guard's cost as webhook events are applied, and the cost of a campaign's window.

A database of its own gets one campaign of ``--recipients`` sent rows; their delivery events (one in
``--bounce-every`` a hard bounce) are stored, then processed in batches of 100 as the worker does
(counting, campaign slices and judging included). Printed: events per second, p50 and p95 ms per
batch, and p50 ms of ``guard.window_of`` for the campaign (its total and at most 11 slices read by
primary key); nothing is asserted. The database is dropped at the end.

    .venv/bin/python tests/benchmarks/bench_reputation.py [--recipients 5000] [--bounce-every 40]
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

from shared import migrations
from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import ReputationStatus
from shared.reputation import guard
from shared.settings import load_settings
from tests.conftest import create_database, drop_database
from tests.reputation_helpers import HARD_BOUNCE, sent_messages
from tests.webhook_factories import make_organization, resend_payload, store_event
from worker.events.processing import process_events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=5000)
    parser.add_argument("--bounce-every", type=int, default=40)
    args = parser.parse_args()
    name = f"pilot_bench_rep_{uuid.uuid4().hex[:10]}"
    url = create_database(name)
    try:
        migrations.upgrade(url)
        settings = load_settings(database_url=url)
        engine = make_engine(settings)
        factory = make_sessionmaker(engine)
        with transaction(factory) as session:
            org, connector = make_organization(session)
        task, email_ids = sent_messages(factory, org, connector, args.recipients)
        with transaction(factory) as session:
            event_ids = [
                store_event(
                    session,
                    resend_payload("bounced", email_id, bounce=HARD_BOUNCE)
                    if i % args.bounce_every == 0
                    else resend_payload("delivered", email_id),
                )
                for i, email_id in enumerate(email_ids)
            ]
        batches = []
        started = time.perf_counter()
        for start in range(0, len(event_ids), 100):
            t0 = time.perf_counter()
            process_events(factory, event_ids[start : start + 100], settings=settings)
            batches.append((time.perf_counter() - t0) * 1000)
        total = time.perf_counter() - started
        windows = []
        with factory() as session:
            status = session.get(ReputationStatus, task)
            assert status is not None
            for _ in range(200):
                t0 = time.perf_counter()
                window = guard.window_of(session, status, settings, now=datetime.now(UTC))
                windows.append((time.perf_counter() - t0) * 1000)
        batches.sort()
        print(f"events: {len(event_ids)} in {total:.2f} s, {len(event_ids) / total:.0f} events/s")
        p95 = batches[int(len(batches) * 0.95)]
        print(f"batch of 100: p50 {statistics.median(batches):.1f} ms, p95 {p95:.1f} ms")
        print(f"campaign window ({window.recipients} recipients): p50 {statistics.median(windows):.3f} ms")
        engine.dispose()
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
