"""Scheduling an API key's next dispatch through the broker: at most one pending per key.

However many ask, one ``pilot.dispatch`` is published: a note in Redis says which time is scheduled,
and only an earlier time publishes another. A starting dispatch clears the note, which also expires
shortly after its time, so a lost message blocks nothing for long. See docs/architecture.md,
"Scheduling dispatches".
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from shared import task_names
from shared.errors import RateLimitBackendUnavailable
from shared.rate_limit import RateLimiter
from shared.sending.retry_policy import is_short_wait

logger = logging.getLogger(__name__)

#: ``publish(task name, kwargs, countdown seconds)``: send a task to the broker.
Publish = Callable[[str, dict[str, Any], float], None]
#: A scheduled dispatch not started this long after its time is taken for lost: the next need
#: publishes another. A late one that still runs is harmless (dispatches of a key take turns in
#: PostgreSQL), while waiting for one that never comes would hold the key's queue.
RESERVATION_KEEP_MS = 5_000


def _now_ms() -> int:
    return int(time.time() * 1000)


class ReservingScheduler:
    """A :class:`~shared.sending.observers.DispatchScheduler` publishing ``pilot.dispatch``."""

    def __init__(
        self, limiter: RateLimiter, publish: Publish, *, clock_ms: Callable[[], int] = _now_ms
    ) -> None:
        self._limiter = limiter
        self._publish = publish
        self._clock_ms = clock_ms

    def schedule(self, key_hash: str, delay_s: float) -> None:
        """Dispatch ``key_hash``'s queue in ``delay_s`` seconds, unless one is scheduled by then."""
        delay_s = max(0.0, delay_s)
        if not is_short_wait(delay_s):
            return  # a long wait is kept in the rows; beat releases them
        at_ms = self._clock_ms() + math.ceil(delay_s * 1000)
        try:
            if not self._limiter.reserve_dispatch(key_hash, at_ms, keep_ms=RESERVATION_KEEP_MS):
                return
        except RateLimitBackendUnavailable:
            logger.warning("dispatch of API key %s not scheduled: Redis unavailable", key_hash)
            return
        try:
            self._publish(task_names.DISPATCH, {"dispatch_key": key_hash, "at_ms": at_ms}, delay_s)
        except Exception:
            logger.exception(
                "dispatch of API key %s not published; beat's sweep will find its rows", key_hash
            )
            with contextlib.suppress(RateLimitBackendUnavailable):  # else the note expires on its own
                self._limiter.release_dispatch(key_hash, at_ms)
