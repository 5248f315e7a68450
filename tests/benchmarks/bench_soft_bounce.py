"""Recipient lookups of event processing on a large ledger, before and after migration 0004.

A database of its own is migrated to revision 0003 and loaded with ``--messages`` ledger rows in
``--tasks`` campaigns and their metric rows (``tests/ledger_volume.py``, ``generate_series``), then
analyzed. For ``--lookups`` distinct recipients, each in its own transaction (rolled back):

- ``delivery_history``: what every soft bounce reads (the recipient's deliveries and bounces in
  its organization);
- ``find_message`` by tags: an event whose email id the ledger does not know, found by its
  ``task_id`` tag and recipient (``_by_tags``).

Timed at 0003, then the database is upgraded to 0004 (the concurrent index builds are timed too),
analyzed, and timed again. Printed: p50 and p95 milliseconds per lookup, of the whole function and
of its recipient query in the server (``EXPLAIN ANALYZE``), and the speed-up; nothing is asserted.
The database is dropped at the end.

    .venv/bin/python tests/benchmarks/bench_soft_bounce.py [--messages 1000000] [--tasks 20] [--lookups 20]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from shared import migrations
from shared.db import make_engine
from shared.models import EmailMessage, EmailMetric
from shared.resend_events import EventType, TrackingEvent
from shared.settings import load_settings
from tests.conftest import create_database, drop_database
from tests.ledger_volume import LoadedLedger, analyze, load_ledger
from tests.query_plans import explain, statements_of
from worker.events.processing import find_message
from worker.events.suppression import delivery_history

#: The task whose recipients are looked up by tag (campaigns are alike; any one will do).
LOOKUP_TASK = 0
#: What the SQL of both lookups' recipient query contains.
BY_RECIPIENT = "lower(email_messages.recipient)"


def lookup_recipients(volume: LoadedLedger, count: int) -> list[str]:
    """``count`` recipients spread over the campaign's list."""
    step = max(1, volume.recipients_per_task // count)
    return [volume.recipient(number) for number in range(0, step * count, step)][:count]


def forget_resend_ids(engine: Engine, volume: LoadedLedger, recipients: list[str]) -> None:
    """Their rows in the lookup task lose their Resend id, so an event may find them by tags only."""
    with Session(engine) as session:
        session.execute(
            text(
                "UPDATE email_messages SET resend_email_id = NULL"
                " WHERE task_id = :task_id AND recipient = ANY(:recipients)"
            ),
            {"task_id": volume.task_ids[LOOKUP_TASK], "recipients": recipients},
        )
        session.commit()


Lookup = Callable[[Session], object]


def history_lookup(engine: Engine, volume: LoadedLedger, recipient: str) -> Lookup:
    with Session(engine) as session:
        message = session.scalars(
            select(EmailMessage).where(
                EmailMessage.task_id == volume.task_ids[LOOKUP_TASK], EmailMessage.recipient == recipient
            )
        ).one()
    return lambda session: delivery_history(session, message)


def tags_lookup(volume: LoadedLedger, recipient: str) -> Lookup:
    event = TrackingEvent(
        type=EventType.BOUNCED,
        raw_type="email.bounced",
        email_id=f"unknown-{uuid.uuid4()}",
        recipient=recipient.lower(),
        tags={"task_id": str(volume.task_ids[LOOKUP_TASK])},
    )
    return lambda session: find_message(session, event)


@dataclass
class Timings:
    """Milliseconds per lookup: the whole function (wall clock) and the recipient query in the server."""

    wall: list[float] = field(default_factory=list)
    server: list[float] = field(default_factory=list)


def time_lookups(engine: Engine, lookups: list[Lookup]) -> Timings:
    """Each lookup alone, on a connection already checked out, in a transaction rolled back after it.

    The server time is ``EXPLAIN ANALYZE``'s execution time of the lookup's ``lower(recipient)``
    statement, run again after the timed call: on a shared machine it is the steadier figure. One
    untimed warm-up run of the first lookup.
    """
    timings = Timings()
    for index, lookup in enumerate([lookups[0], *lookups]):
        with Session(engine) as session:
            session.connection()
            started = time.perf_counter()
            [statement] = statements_of(session, functools.partial(lookup, session), matching=BY_RECIPIENT)
            wall = (time.perf_counter() - started) * 1000
            server = explain(session, statement, analyze=True)["Execution Time"]
            session.rollback()
        if index:
            timings.wall.append(wall)
            timings.server.append(server)
    return timings


def measure(engine: Engine, volume: LoadedLedger, recipients: list[str]) -> dict[str, Timings]:
    return {
        "delivery_history": time_lookups(engine, [history_lookup(engine, volume, r) for r in recipients]),
        "find_message by tags": time_lookups(engine, [tags_lookup(volume, r) for r in recipients]),
    }


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def report(before: dict[str, Timings], after: dict[str, Timings]) -> None:
    print(f"{'ms per lookup':<40}{'0003 p50':>10}{'p95':>9}{'0004 p50':>11}{'p95':>8}{'speed-up':>10}")
    for lookup in before:
        for kind in ("wall", "server"):
            old, new = getattr(before[lookup], kind), getattr(after[lookup], kind)
            label = f"{lookup} ({'function' if kind == 'wall' else 'query in server'})"
            ratio = statistics.median(old) / statistics.median(new)
            print(
                f"{label:<40}{statistics.median(old):>10.2f}{p95(old):>9.2f}"
                f"{statistics.median(new):>11.2f}{p95(new):>8.2f}{ratio:>9.0f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="ledger rows (default 1,000,000)")
    parser.add_argument("--tasks", type=int, default=20, help="campaigns they are split into (default 20)")
    parser.add_argument("--lookups", type=int, default=20, help="recipients looked up (default 20)")
    args = parser.parse_args()
    if args.messages <= 0 or args.tasks <= 0 or args.messages % args.tasks:
        parser.error("--messages and --tasks must be positive, --messages a multiple of --tasks")
    if not 0 < args.lookups <= args.messages // args.tasks:
        parser.error("--lookups must be between 1 and the recipients per campaign (--messages / --tasks)")

    name = f"pilot_bench_soft_bounce_{uuid.uuid4().hex[:10]}"
    url = create_database(name)
    engine = make_engine(load_settings(database_url=url))
    try:
        migrations.upgrade(url, "0003")
        started = time.perf_counter()
        with engine.connect() as connection:
            volume = load_ledger(connection, messages=args.messages, tasks=args.tasks)
        with Session(engine) as session:
            metric_rows = session.scalar(select(func.count()).select_from(EmailMetric))
        print(
            f"ledger: {args.messages:,} messages in {args.tasks} campaigns, {metric_rows:,} metric rows"
            f" (loaded in {time.perf_counter() - started:.0f} s); {args.lookups} recipients looked up"
        )
        recipients = lookup_recipients(volume, args.lookups)
        forget_resend_ids(engine, volume, recipients)

        before = measure(engine, volume, recipients)
        started = time.perf_counter()
        migrations.upgrade(url, "0004")
        built = time.perf_counter() - started
        print(f"migration 0003 -> 0004 (two concurrent index builds, two drops): {built:.1f} s")
        with engine.connect() as connection:
            analyze(connection)
        after = measure(engine, volume, recipients)

        report(before, after)
    finally:
        engine.dispose()
        drop_database(name)


if __name__ == "__main__":
    main()
