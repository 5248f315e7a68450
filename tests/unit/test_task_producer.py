"""shared.task_producer.publish: the one place a task name meets its queue."""

from __future__ import annotations

from typing import Any

from shared import task_names
from shared.task_producer import publish, publish_event_processing


class RecordingSender:
    """A Celery app's ``send_task``, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        self.calls.append((name, {"args": args, "kwargs": kwargs, **options}))


def test_publish_sends_each_task_to_its_own_queue() -> None:
    sender = RecordingSender()

    for name in task_names.TASK_QUEUES:
        publish(sender, name, kwargs={})

    assert [call["queue"] for _, call in sender.calls] == list(task_names.TASK_QUEUES.values())


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
