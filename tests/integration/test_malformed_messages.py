"""A real ``celery worker`` takes malformed messages on every queue it consumes and keeps working.

Each malformed message is published raw (kombu, or the Redis transport's envelope for what kombu
cannot publish), then one valid task; the worker must still be alive, have run the valid task, have
dead-lettered every malformed message exactly once with its reason, left nothing on the broker,
logged a WARNING per message, and counted them by reason on its /metrics.
"""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from kombu import Connection
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared import task_names
from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import DeadLetter, DeadLetterReason, WebhookEvent
from shared.settings import load_settings
from tests.sandbox_process import free_port
from tests.worker_process import WorkerHandle, running_worker, worker_env
from worker.celery_app import make_celery

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SETTLE_TIMEOUT_S = 60.0
QUEUES = (task_names.SENDS_QUEUE, task_names.EVENTS_QUEUE, task_names.MAINTENANCE_QUEUE)
JSON = "application/json"
MALFORMED = DeadLetterReason.MALFORMED


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Case:
    """One malformed message: where it goes, what it is, and the reason it must be refused for."""

    label: str
    queue: str
    body: bytes
    reason: DeadLetterReason
    headers: Any = field(default_factory=dict)
    content_type: str = JSON
    content_encoding: str = "utf-8"

    @property
    def message_id(self) -> str | None:
        if isinstance(self.headers, dict) and "id" in self.headers:
            return str(self.headers["id"])
        if self.content_type == JSON and not (isinstance(self.headers, dict) and "task" in self.headers):
            body = json.loads(self.body)
            return body.get("id") if isinstance(body, dict) else None
        return None

    @property
    def key(self) -> tuple[str | None, str]:
        """What identifies its dead letter: the message id as given and the body's digest."""
        return self.message_id, hashlib.sha256(self.body).hexdigest()


def proto2(task: str, **extra: Any) -> dict[str, Any]:
    """Protocol 2 headers for ``task`` with a fresh id."""
    return {"task": task, "id": new_id(), **extra}


def build_cases() -> list[Case]:
    sends, events, maintenance = QUEUES
    send, event, sweep = task_names.SEND_EMAIL, task_names.PROCESS_WEBHOOK_EVENT, task_names.SWEEP
    return [
        Case("string body", sends, b'"just a string"', MALFORMED, proto2(send)),
        Case("two-item body", sends, b"[[], {}]", MALFORMED, proto2(send)),
        Case("number body", sends, b"5", MALFORMED, proto2(send)),
        Case("kwargs not a mapping", sends, b"[[], [], {}]", MALFORMED, proto2(send)),
        Case("embed not a mapping", sends, b"[[], {}, 5]", MALFORMED, proto2(send)),
        Case("no task header", sends, b"[[], {}, {}]", MALFORMED, {"id": new_id()}),
        Case("no id header", sends, b'[[], {"to": []}, {}]', MALFORMED, {"task": send}),
        Case("no headers at all", sends, b"[[], {}, null]", MALFORMED, {}),
        Case("headers not a mapping", sends, b"[[], {}, {}]", MALFORMED, [send, new_id()]),
        Case("time limit not numbers", sends, b"[[], {}, {}]", MALFORMED, proto2(send, timelimit="soon")),
        Case(
            "task name typo",
            sends,
            b'[[], {"to": []}, {}]',
            DeadLetterReason.UNKNOWN_TASK,
            proto2("pilot.send_mail"),
        ),
        Case("plain text", sends, b"hello", DeadLetterReason.CONTENT_TYPE, proto2(send), "text/plain"),
        Case("invalid UTF-8", sends, b'[["\xff\xfe"], {}, {}]', DeadLetterReason.UNDECODABLE, proto2(send)),
        Case("null body", events, b"null", MALFORMED, proto2(event)),
        Case("empty mapping body", events, b"{}", MALFORMED, proto2(event)),
        Case("hybrid kwargs not a mapping", events, b'{"args": [], "kwargs": [1]}', MALFORMED, proto2(event)),
        Case(
            "protocol 1 args not a list",
            events,
            json.dumps({"task": event, "id": new_id(), "args": "abc", "kwargs": {}}).encode(),
            MALFORMED,
        ),
        Case(
            "pickle",
            events,
            pickle.dumps(([], {}, {})),
            DeadLetterReason.CONTENT_TYPE,
            proto2(event),
            "application/x-python-serialize",
            "binary",
        ),
        Case("missing argument", events, b"[[], {}, {}]", DeadLetterReason.ARGUMENTS, proto2(event)),
        Case("args not a list", maintenance, b'["x", {}, {}]', MALFORMED, proto2(sweep)),
        Case("eta not a time", maintenance, b"[[], {}, {}]", MALFORMED, proto2(sweep, eta="tomorrow")),
        Case(
            "protocol 1 without id",
            maintenance,
            json.dumps({"task": sweep, "args": [], "kwargs": {}}).encode(),
            MALFORMED,
        ),
        Case("too many arguments", maintenance, b"[[1], {}, {}]", DeadLetterReason.ARGUMENTS, proto2(sweep)),
        Case(
            "YAML",
            maintenance,
            b"task: pilot.sweep\n",
            DeadLetterReason.CONTENT_TYPE,
            proto2(sweep),
            "application/x-yaml",
        ),
        Case("not JSON", maintenance, b'{"task": ', DeadLetterReason.UNDECODABLE, proto2(sweep)),
    ]


def publish(connection: Connection, broker: redis.Redis, case: Case) -> None:
    """Publish ``case`` raw on its queue (its exchange and routing key are the queue's name)."""
    if isinstance(case.headers, dict):
        connection.Producer().publish(
            case.body,
            exchange=case.queue,
            routing_key=case.queue,
            content_type=case.content_type,
            content_encoding=case.content_encoding,
            headers=case.headers,
            serializer=None,
            retry=False,
        )
        return
    # kombu always publishes headers as a mapping; the envelope of its Redis transport can hold any.
    envelope = {
        "body": base64.b64encode(case.body).decode(),
        "content-encoding": case.content_encoding,
        "content-type": case.content_type,
        "headers": case.headers,
        "properties": {
            "body_encoding": "base64",
            "delivery_tag": new_id(),
            "delivery_info": {"exchange": case.queue, "routing_key": case.queue},
            "priority": 0,
        },
    }
    broker.lpush(case.queue, json.dumps(envelope))


def settle(condition: Callable[[], bool], what: str, worker: WorkerHandle) -> None:
    """Wait until ``condition()`` holds; fail at once if the worker died, or after the timeout."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not condition():
        if not alive(worker.pid):
            raise AssertionError(f"the worker died waiting for {what}:\n{worker.log()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{worker.log()[-3000:]}")
        time.sleep(0.1)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def scrape(port: int) -> Counter[str]:
    """``pilot_worker_rejected_messages_total`` by reason, from the worker's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "pilot_worker_rejected_messages_total":
                counts[sample.labels["reason"]] = int(sample.value)
    return counts


@dataclass
class Run:
    """What the test side observes of one worker run."""

    factory: sessionmaker[Session]
    broker: redis.Redis

    def dead_letters(self) -> list[DeadLetter]:
        with self.factory() as session:
            return list(session.scalars(select(DeadLetter)))

    def processed(self, event_id: uuid.UUID) -> bool:
        with self.factory() as session:
            return session.get_one(WebhookEvent, event_id).processed_at is not None

    def drained(self) -> bool:
        return sum(self.broker.llen(q) for q in QUEUES) == 0 and self.broker.hlen("unacked") == 0


@pytest.fixture
def run(fresh_database_url: str, isolated_redis_url: str) -> Iterator[Run]:
    engine = make_engine(load_settings(database_url=fresh_database_url))
    broker = redis.Redis.from_url(isolated_redis_url)
    yield Run(make_sessionmaker(engine), broker)
    broker.close()
    engine.dispose()


def test_worker_dead_letters_every_malformed_message_and_keeps_consuming(
    run: Run, fresh_database_url: str, isolated_redis_url: str
) -> None:
    cases = build_cases()
    assert len({case.key for case in cases}) == len(cases), "each case must be told apart by its key"
    port = free_port()
    env = worker_env(
        database_url=fresh_database_url,
        redis_db=int(isolated_redis_url.rsplit("/", 1)[1]),
        resend_base_url="http://127.0.0.1:9",
        PILOT_WORKER_METRICS_PORT=str(port),
    )
    with transaction(run.factory) as session:
        event = WebhookEvent(svix_id=f"msg_{uuid.uuid4().hex}", type="email.unknown", payload={})
        session.add(event)
    app = make_celery(load_settings(database_url=fresh_database_url, redis_url=isolated_redis_url))
    with running_worker(env, concurrency=1, queues=QUEUES) as worker, Connection(isolated_redis_url) as conn:
        # Given a worker consuming every queue, when malformed messages then a valid task arrive
        for case in cases:
            publish(conn, run.broker, case)
        app.send_task(task_names.PROCESS_WEBHOOK_EVENT, args=[str(event.id)], queue=task_names.EVENTS_QUEUE)

        settle(lambda: run.processed(event.id), "the valid task", worker)
        settle(lambda: len(run.dead_letters()) >= len(cases), "every dead letter", worker)
        settle(run.drained, "the broker to drain", worker)

        # Then the worker lives on, each message has one dead letter with its reason, none is left
        assert alive(worker.pid)
        letters = {(row.message_id, row.body_sha256): row for row in run.dead_letters()}
        assert len(letters) == len(run.dead_letters()) == len(cases)
        assert {case.label: letters[case.key].reason for case in cases if case.key in letters} == {
            case.label: case.reason.value for case in cases
        }
        assert {case.label: letters[case.key].queue for case in cases} == {
            case.label: case.queue for case in cases
        }
        refusals = [line for line in worker.log().splitlines() if "refused a broker message" in line]
        assert len(refusals) == len(cases)
        assert all("WARNING" in line for line in refusals)
        assert scrape(port) == Counter(case.reason.value for case in cases)
    app.close()
