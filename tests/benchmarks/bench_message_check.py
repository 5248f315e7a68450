"""Main-process cost of the structural check of a task message, beside the decoding it reuses.

Every message a worker consumes is checked in its main process before Celery's handler takes it.
Printed per message: decoding the JSON body (which Celery does anyway, and the check reuses), the
check on the decoded message, and building a dead-letter record for a refused one. Medians of
``ROUNDS`` rounds; figures depend on the machine and its load, nothing is asserted.

Run: ``.venv/bin/python tests/benchmarks/bench_message_check.py`` (``make bench`` runs it).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from kombu.message import Message
from kombu.utils.json import dumps

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import worker.broker.tasks
import worker.events.tasks
import worker.tasks  # noqa: F401  (registers the tasks whose signatures are checked)
from shared import task_names
from shared.models import DeadLetterReason
from worker.broker.dead_letters import dead_letter_record
from worker.broker.message_check import Refusal, check_task_message, task_signatures
from worker.celery_app import app

ROUNDS = 3
MESSAGES = 20_000
KWARGS = {
    "connector_id": "8b3e0000-0000-4000-8000-000000000001",
    "to": ["ada@example.com"],
    "subject": "Your invoice",
    "html": "<p>" + "Thanks! " * 100 + "</p>",
    "metadata": {"invoice": "4711"},
}


SENT = app.amqp.as_task_v2("4d1e4b7a-5d0c-4c56-9a53-47c1a1c4f2de", task_names.SEND_EMAIL, kwargs=KWARGS)
BODY = dumps(SENT.body).encode()


def task_message() -> Message:
    msg = Message(body=BODY, content_type="application/json", headers=SENT.headers)
    msg.accept = {"application/json"}
    return msg


def per_message_us(run: Callable[[], object]) -> float:
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(MESSAGES):
            run()
        rounds.append((time.perf_counter() - started) / MESSAGES * 1e6)
    return statistics.median(rounds)


def main() -> None:
    signatures = task_signatures(app.tasks)
    decoded = task_message()
    assert check_task_message(decoded, signatures) is None
    refusal = Refusal(DeadLetterReason.MALFORMED, "body: expected [args, kwargs, embed], got a string")
    now = datetime.now(UTC)

    decode = per_message_us(lambda: task_message().payload)
    check = per_message_us(lambda: check_task_message(decoded, signatures))
    record = per_message_us(lambda: dead_letter_record(decoded, refusal, received_at=now))
    print(f"send_email message of {len(decoded.body)} bytes, per message (median of {ROUNDS} x {MESSAGES}):")
    print(f"  decode the JSON body (Celery does it anyway): {decode:7.1f} us")
    print(f"  structural check of the decoded message:     {check:7.1f} us")
    print(f"  dead-letter record of a refused message:     {record:7.1f} us")


if __name__ == "__main__":
    main()
