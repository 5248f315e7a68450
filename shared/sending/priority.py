"""Which class a send is in: the caller's ``priority`` if given, else transactional for a
``pilot.send_email`` to a handful of addresses and bulk for everything else.

One rule for the producers, which choose the broker queue from the raw kwargs, and for the worker,
which stores the class on each ledger row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared import task_names
from shared.models import PRIORITIES, Priority

#: A ``pilot.send_email`` to at most this many addresses (``to``, ``cc`` and ``bcc``) is
#: transactional unless it says otherwise.
TRANSACTIONAL_MAX_RECIPIENTS = 5


def priority_for(task_name: str, explicit: Priority | None, recipients: int) -> Priority:
    """The class of a send of ``task_name`` to ``recipients`` addresses, ``explicit`` winning."""
    if explicit is not None:
        return explicit
    if task_name == task_names.SEND_EMAIL and recipients <= TRANSACTIONAL_MAX_RECIPIENTS:
        return Priority.TRANSACTIONAL
    return Priority.BULK


def priority_of_kwargs(task_name: str, kwargs: Mapping[str, Any]) -> Priority:
    """:func:`priority_for` of raw task kwargs, before validation (an invalid value counts as absent:
    the worker refuses it, naming the field)."""
    given = kwargs.get("priority")
    explicit = Priority(given) if given in PRIORITIES else None
    recipients = sum(_addresses(kwargs.get(field)) for field in ("to", "cc", "bcc"))
    return priority_for(task_name, explicit, recipients)


def _addresses(value: Any) -> int:
    if isinstance(value, str):
        return 1
    if isinstance(value, list | tuple):
        return len(value)
    return 0
