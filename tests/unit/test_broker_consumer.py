"""worker.broker.consumer: refused messages are logged, counted, dead-lettered, then acknowledged;
Celery's consumer hooks and anything its handler raises take that same path."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any
from unittest.mock import Mock

import pytest
import redis
from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.message import Message
from prometheus_client import REGISTRY

import worker.beat.tasks
import worker.broker.tasks
import worker.events.tasks
import worker.tasks  # noqa: F401  (registers the tasks the consumer knows)
from shared import task_names
from shared.errors import DeadLetterNotPublished
from shared.models import DeadLetterReason
from worker.broker.consumer import GuardedConsumer, MessageRefuser, TolerantMessage
from worker.broker.dead_letters import DeadLetterRecord
from worker.broker.message_check import Refusal
from worker.celery_app import app

SENDS = task_names.SENDS_QUEUE


def message(body: bytes, headers: Any, *, routing_key: str = SENDS) -> Message:
    msg = Message(
        body=body,
        content_type="application/json",
        content_encoding="utf-8",
        headers={},
        delivery_info={"exchange": routing_key, "routing_key": routing_key},
        channel=Mock(),
    )
    msg.headers = headers
    msg.accept = {"application/json"}
    return msg


def valid(task: str = task_names.SWEEP) -> Message:
    return message(b"[[], {}, {}]", {"task": task, "id": "m-valid"})


def rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("pilot_worker_rejected_messages_total", {"reason": reason}) or 0.0


class Published(list[DeadLetterRecord]):
    """A publisher that keeps what it was given, and whether the message was acknowledged by then."""

    def __init__(self) -> None:
        super().__init__()
        self.acked_before: list[bool] = []
        self.current: Message | None = None

    def __call__(self, record: DeadLetterRecord) -> None:
        self.acked_before.append(bool(self.current and self.current.acknowledged))
        self.append(record)


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def consumer(published: Published) -> Iterator[GuardedConsumer]:
    """A consumer as Celery builds it in the worker, its pool, timer and broker replaced by mocks."""
    built = GuardedConsumer(Mock(), app=app, timer=Mock(), controller=Mock(), pool=Mock(), hostname="t@h")
    built.task_consumer = Mock()
    built.update_strategies()
    built.refuser = MessageRefuser(published)
    yield built


def test_message_refuser_publishes_the_dead_letter_before_it_acknowledges(published: Published) -> None:
    msg = message(b'"just a string"', {"task": task_names.SEND_EMAIL, "id": "m-1"})
    published.current = msg

    MessageRefuser(published)(msg, Refusal(DeadLetterReason.MALFORMED, "body: wrong"))

    assert [(r.message_id, r.detail) for r in published] == [("m-1", "body: wrong")]
    assert published.acked_before == [False] and msg.acknowledged


def test_message_refuser_leaves_the_message_unacknowledged_when_the_publish_fails() -> None:
    msg = message(b"5", {"task": task_names.SEND_EMAIL, "id": "m-2"})

    def broker_down(_: DeadLetterRecord) -> None:
        raise redis.ConnectionError("connection refused")

    with pytest.raises(DeadLetterNotPublished) as raised:
        MessageRefuser(broker_down)(msg, Refusal(DeadLetterReason.MALFORMED, "body: wrong"))

    # An OSError: Celery's consumer reconnects rather than stopping the worker.
    assert isinstance(raised.value, OSError) and not msg.acknowledged


def test_message_refuser_counts_nothing_until_the_dead_letter_is_published() -> None:
    before = rejected("undecodable")

    def broker_down(_: DeadLetterRecord) -> None:
        raise redis.ConnectionError("connection refused")

    with pytest.raises(DeadLetterNotPublished):
        MessageRefuser(broker_down)(
            message(b"{", {}), Refusal(DeadLetterReason.UNDECODABLE, "body: not JSON")
        )

    assert rejected("undecodable") == before


def test_message_refuser_counts_refusals_by_reason(published: Published) -> None:
    before = {reason: rejected(reason) for reason in ("malformed", "unknown_task")}
    refuse = MessageRefuser(published)

    refuse(message(b"5", {}), Refusal(DeadLetterReason.MALFORMED, "body: wrong"))
    refuse(message(b"6", {}), Refusal(DeadLetterReason.MALFORMED, "body: wrong"))
    refuse(message(b"[[], {}, {}]", {}), Refusal(DeadLetterReason.UNKNOWN_TASK, "task: unknown"))

    assert rejected("malformed") == before["malformed"] + 2
    assert rejected("unknown_task") == before["unknown_task"] + 1


def test_message_refuser_logs_a_warning_with_name_id_queue_and_reason_but_no_body(
    published: Published, caplog: pytest.LogCaptureFixture
) -> None:
    msg = message(b'[[], {"to": ["ada@example.com"]}, {}]', {"task": "pilot.send_mail", "id": "m-3"})

    with caplog.at_level(logging.WARNING, logger="worker.broker.consumer"):
        MessageRefuser(published)(
            msg, Refusal(DeadLetterReason.UNKNOWN_TASK, "task: 'pilot.send_mail' unknown")
        )

    [entry] = caplog.records
    assert entry.levelno == logging.WARNING
    assert all(
        part in entry.getMessage() for part in ("unknown_task", "'pilot.send_mail'", "'m-3'", "'pilot.sends'")
    )
    assert "ada@example.com" not in entry.getMessage()


def test_consumer_handler_dead_letters_a_malformed_message_without_calling_celery(
    consumer: GuardedConsumer, published: Published
) -> None:
    strategy = consumer.strategies[task_names.SEND_EMAIL] = Mock()
    msg = message(b'"just a string"', {"task": task_names.SEND_EMAIL, "id": "m-4"})

    consumer.create_task_handler()(msg)

    assert [(r.reason, r.message_id) for r in published] == [(DeadLetterReason.MALFORMED, "m-4")]
    assert msg.acknowledged and not strategy.called


def test_consumer_handler_dead_letters_an_unknown_task_name(
    consumer: GuardedConsumer, published: Published
) -> None:
    msg = message(b"[[], {}, {}]", {"task": "pilot.send_mail", "id": "m-5"})

    consumer.create_task_handler()(msg)

    assert [(r.reason, r.task_name) for r in published] == [
        (DeadLetterReason.UNKNOWN_TASK, "pilot.send_mail")
    ]


def test_consumer_handler_passes_a_valid_message_to_celery(
    consumer: GuardedConsumer, published: Published
) -> None:
    strategy = consumer.strategies[task_names.SWEEP] = Mock()
    msg = valid()

    consumer.create_task_handler()(msg)

    assert strategy.call_count == 1 and published == [] and not msg.acknowledged


def test_consumer_handler_dead_letters_what_celery_could_not_take(
    consumer: GuardedConsumer, published: Published
) -> None:
    consumer.strategies[task_names.SWEEP] = Mock(side_effect=KeyError("id"))
    msg = valid()

    consumer.create_task_handler()(msg)

    assert [(r.reason, r.detail) for r in published] == [
        (DeadLetterReason.UNEXPECTED, "Celery could not take it: KeyError")
    ]
    assert msg.acknowledged


def test_consumer_handler_lets_a_broker_failure_reach_celery(
    consumer: GuardedConsumer, published: Published
) -> None:
    consumer.strategies[task_names.SWEEP] = Mock(side_effect=redis.ConnectionError("gone"))

    with pytest.raises(redis.ConnectionError):
        consumer.create_task_handler()(valid())

    assert published == []


@pytest.mark.parametrize(
    ("hook", "arguments", "reason"),
    [
        ("on_unknown_message", (None,), DeadLetterReason.MALFORMED),
        ("on_unknown_task", (None, KeyError("x")), DeadLetterReason.UNKNOWN_TASK),
        ("on_invalid_task", (None, ContentDisallowed("pickle")), DeadLetterReason.CONTENT_TYPE),
        ("on_invalid_task", (None, ValueError("eta")), DeadLetterReason.MALFORMED),
    ],
)
def test_consumer_celery_refusal_hooks_dead_letter(
    consumer: GuardedConsumer,
    published: Published,
    hook: str,
    arguments: tuple[Any, ...],
    reason: DeadLetterReason,
) -> None:
    msg = valid()
    body, *rest = arguments

    getattr(consumer, hook)(body, msg, *rest)

    assert [r.reason for r in published] == [reason] and msg.acknowledged


def test_consumer_decode_error_of_a_task_message_is_dead_lettered(
    consumer: GuardedConsumer, published: Published
) -> None:
    msg = valid()

    consumer.on_decode_error(msg, DecodeError("bad"))

    assert [r.reason for r in published] == [DeadLetterReason.UNDECODABLE] and msg.acknowledged


def test_consumer_decode_error_of_a_remote_control_message_is_left_to_celery(
    consumer: GuardedConsumer, published: Published
) -> None:
    msg = message(b"{", {}, routing_key="")
    msg.delivery_info["exchange"] = "celery.pidbox"

    consumer.on_decode_error(msg, DecodeError("bad"))

    assert published == [] and msg.acknowledged  # Celery's own handling: logged and acknowledged


def test_tolerant_message_keeps_headers_that_are_not_a_mapping() -> None:
    envelope = {
        "body": base64.b64encode(b"[[], {}, {}]").decode(),
        "content-type": "application/json",
        "content-encoding": "utf-8",
        "headers": ["pilot.send_email"],
        "properties": {"delivery_tag": "tag-1", "body_encoding": "base64", "delivery_info": {}},
    }
    channel = Mock(decode_body=lambda body, encoding: base64.b64decode(body))

    msg = TolerantMessage(json.loads(json.dumps(envelope)), channel=channel)

    assert (msg.headers, msg.body, msg._raw["headers"]) == (
        ["pilot.send_email"],
        b"[[], {}, {}]",
        ["pilot.send_email"],
    )
