"""shared.task_producer.publish: the one place a task name meets its queue."""

from __future__ import annotations

from typing import Any

import pytest

from shared import task_names
from shared.task_producer import publish, publish_event_processing


class RecordingSender:
    """A Celery app's ``send_task``, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        self.calls.append((name, {"args": args, "kwargs": kwargs, **options}))


def test_publish_sends_each_task_but_the_sends_to_its_own_queue() -> None:
    sender = RecordingSender()
    names = [name for name in task_names.TASK_QUEUES if name not in SENDS]

    for name in names:
        publish(sender, name, kwargs={})

    assert [call["queue"] for _, call in sender.calls] == [task_names.TASK_QUEUES[name] for name in names]


SENDS = (task_names.SEND_EMAIL, task_names.SEND_BATCH)
ONE = {"to": "a@example.test"}
SIX = {"to": [f"r{n}@example.test" for n in range(4)], "cc": "c@example.test", "bcc": ["b@example.test"]}


@pytest.mark.parametrize(
    ("name", "kwargs", "queue"),
    [
        (task_names.SEND_EMAIL, ONE, task_names.PRIORITY_SENDS_QUEUE),
        (task_names.SEND_EMAIL, {**ONE, "cc": ["c@example.test"] * 4}, task_names.PRIORITY_SENDS_QUEUE),
        (task_names.SEND_EMAIL, SIX, task_names.SENDS_QUEUE),
        (task_names.SEND_EMAIL, {**ONE, "priority": "bulk"}, task_names.SENDS_QUEUE),
        (task_names.SEND_EMAIL, {**SIX, "priority": "transactional"}, task_names.PRIORITY_SENDS_QUEUE),
        (task_names.SEND_EMAIL, {**ONE, "priority": "urgent"}, task_names.PRIORITY_SENDS_QUEUE),
        (task_names.SEND_BATCH, {"emails": [ONE]}, task_names.SENDS_QUEUE),
        (
            task_names.SEND_BATCH,
            {"emails": [ONE], "priority": "transactional"},
            task_names.PRIORITY_SENDS_QUEUE,
        ),
    ],
    ids=[
        "one-address",
        "five-addresses",
        "six-addresses",
        "one-address-said-bulk",
        "six-addresses-said-transactional",
        "unknown-priority-left-to-the-worker",
        "batch",
        "batch-said-transactional",
    ],
)
def test_a_send_goes_to_the_queue_of_its_class(name: str, kwargs: dict[str, Any], queue: str) -> None:
    sender = RecordingSender()

    publish(sender, name, kwargs=kwargs)

    assert sender.calls[0][1]["queue"] == queue


def test_publish_passes_a_countdown_only_when_there_is_one() -> None:
    sender = RecordingSender()

    publish(sender, task_names.DISPATCH, kwargs={"dispatch_key": "k"}, countdown=1.5)
    publish(sender, task_names.DISPATCH, kwargs={"dispatch_key": "k"})

    assert [call["countdown"] for _, call in sender.calls] == [1.5, None]


def test_event_processing_of_one_event_names_it_alone() -> None:
    sender = RecordingSender()

    publish_event_processing(sender, ["e1"])

    [(name, call)] = sender.calls
    assert (name, call["args"], call["queue"]) == (
        task_names.PROCESS_WEBHOOK_EVENT,
        ["e1"],
        task_names.EVENTS_QUEUE,
    )


def test_event_processing_of_several_events_is_one_message() -> None:
    sender = RecordingSender()

    publish_event_processing(sender, ["e1", "e2"])

    [(_, call)] = sender.calls
    assert call["args"] == [["e1", "e2"]]
