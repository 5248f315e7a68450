"""A minimal upstream app: send with the client, then print each outcome event as it arrives.

    python examples/upstream_app.py --broker redis://127.0.0.1:6379/0 --connector ID --to a@example.com

It needs only ``marketing-pilot-client`` (``pip install ./client``): Celery and pydantic.
"""

from __future__ import annotations

import argparse
import uuid

from celery import Celery

from marketing_pilot_client import OutcomeKind, PilotClient, iter_outcomes

#: Kinds after which nothing but opens, clicks and complaints can follow.
FINAL = {OutcomeKind.DELIVERED, OutcomeKind.BOUNCED, OutcomeKind.FAILED, OutcomeKind.SUPPRESSED}


def main(argv: list[str] | None = None) -> int:
    """Send one email to every ``--to`` and print its outcome events until each recipient's is final."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True, help="the Celery broker URL the workers use")
    parser.add_argument("--connector", required=True, help="connector id (pilot connector add)")
    parser.add_argument("--to", action="append", required=True, help="a recipient (repeat for more)")
    parser.add_argument("--queue", default="example.pilot-outcomes", help="your queue for outcome events")
    parser.add_argument(
        "--idle", type=float, default=60.0, help="stop after this many seconds without events"
    )
    args = parser.parse_args(argv)

    app = Celery("example-upstream-app", broker=args.broker)
    client = PilotClient(app)
    correlation = uuid.uuid4()
    celery_id = client.send_email(
        args.connector,
        to=args.to,
        subject="Hello from the example app",
        html="<p>Hello!</p>",
        task_id=correlation,
        idempotency_key=f"example/{correlation}",
        metadata={"source": "example"},
        outcomes_queue=args.queue,
    )
    print(f"sent pilot.send_email {celery_id} (task_id {correlation})", flush=True)
    waiting = {address.lower() for address in args.to}
    for event in iter_outcomes(app, args.queue, timeout=args.idle):
        if event.task_id != correlation:
            continue  # an event of an earlier run
        print(f"{event.kind.value} {event.model_dump_json()}", flush=True)
        if event.kind in FINAL and event.recipient is not None:
            waiting.discard(event.recipient.lower())
        if not waiting:
            break
    app.close()
    return 0 if not waiting else 1


if __name__ == "__main__":
    raise SystemExit(main())
