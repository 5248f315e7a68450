"""When soft bounces escalate to a suppression, as a pure function.

Default (configurable, our choice after Mailchimp, Emailit and keila#181): suppress after 3 consecutive
soft bounces spanning at least 72 h with no delivery in between, for 30 days. ``Undetermined`` bounces
count as soft; a hard bounce is suppressed at once elsewhere and also ends a run here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from shared.models import SuppressionReason

#: Consecutive soft bounces that escalate.
DEFAULT_SOFT_BOUNCES = 3
#: The run must cover at least this long: three bounces in one minute are one bad hour, not a dead box.
DEFAULT_SOFT_BOUNCE_SPAN = timedelta(hours=72)
#: How long an escalated address stays suppressed, counted from its last soft bounce.
DEFAULT_SOFT_BOUNCE_SUPPRESSION = timedelta(days=30)


@dataclass(frozen=True)
class SoftBouncePolicy:
    """Escalation thresholds; the defaults are the module constants."""

    count: int = DEFAULT_SOFT_BOUNCES
    span: timedelta = DEFAULT_SOFT_BOUNCE_SPAN
    suppress_for: timedelta = DEFAULT_SOFT_BOUNCE_SUPPRESSION


class DeliveryFact(NamedTuple):
    """One delivery outcome of an address: ``kind`` is ``delivered``, ``soft_bounce`` or ``hard_bounce``."""

    kind: str
    occurred_at: datetime


def soft_bounce_expiry(history: Iterable[DeliveryFact], policy: SoftBouncePolicy) -> datetime | None:
    """Until when to suppress the address, or ``None`` if its latest soft-bounce run does not escalate.

    ``history`` holds the address's outcomes in any order; they are sorted by the events' own times.
    """
    run: list[datetime] = []
    for fact in sorted(history, key=lambda fact: fact.occurred_at):
        if fact.kind == SuppressionReason.SOFT_BOUNCE:
            run.append(fact.occurred_at)
        else:
            run = []
    if len(run) < policy.count or run[-1] - run[0] < policy.span:
        return None
    return run[-1] + policy.suppress_for
