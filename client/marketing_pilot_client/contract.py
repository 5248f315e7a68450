"""The task names, queues and send classes upstream apps and the worker share (the wire contract).

One rule decides a send's class (:func:`priority_for`) and one its broker queue (:func:`send_queue`);
the worker, its producers and the client all call them.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

SEND_EMAIL = "pilot.send_email"
SEND_BATCH = "pilot.send_batch"
#: Withdraws sends that have not left (scheduled, queued, deferred); each row is answered.
CANCEL = "pilot.cancel"
#: The task each outcome event is published as, to the queue the send named (``outcomes_queue``).
OUTCOME = "pilot.outcome"
SEND_TASKS = frozenset({SEND_EMAIL, SEND_BATCH})

SENDS_QUEUE = "pilot.sends"
PRIORITY_SENDS_QUEUE = "pilot.sends.priority"
#: Celery's default queue: a ``send_task`` without ``queue=`` lands here, and workers consume it too.
DEFAULT_QUEUE = "celery"

#: A ``pilot.send_email`` to at most this many addresses (``to``, ``cc`` and ``bcc``) is
#: transactional unless it says otherwise.
TRANSACTIONAL_MAX_RECIPIENTS = 5


class Priority(StrEnum):
    """Which mail a send is. ``transactional`` (someone waits for it: a password reset, a receipt)
    leaves before ``bulk`` (campaigns, newsletters) and may use the budget's transactional reserve."""

    TRANSACTIONAL = "transactional"
    BULK = "bulk"


PRIORITIES = tuple(priority.value for priority in Priority)


def priority_for(task_name: str, explicit: Priority | None, recipients: int) -> Priority:
    """The class of a send of ``task_name`` to ``recipients`` addresses, ``explicit`` winning."""
    if explicit is not None:
        return explicit
    if task_name == SEND_EMAIL and recipients <= TRANSACTIONAL_MAX_RECIPIENTS:
        return Priority.TRANSACTIONAL
    return Priority.BULK


def priority_of_kwargs(task_name: str, kwargs: Mapping[str, Any]) -> Priority:
    """:func:`priority_for` of raw task kwargs, before validation (an invalid value counts as absent:
    the worker refuses it, naming the field)."""
    given = kwargs.get("priority")
    explicit = Priority(given) if given in PRIORITIES else None
    recipients = sum(_addresses(kwargs.get(field)) for field in ("to", "cc", "bcc"))
    return priority_for(task_name, explicit, recipients)


def send_queue(priority: Priority) -> str:
    """The broker queue of a send in class ``priority``: transactional ones go ahead of bulk ones."""
    return PRIORITY_SENDS_QUEUE if priority is Priority.TRANSACTIONAL else SENDS_QUEUE


def _addresses(value: Any) -> int:
    if isinstance(value, str):
        return 1
    if isinstance(value, list | tuple):
        return len(value)
    return 0
