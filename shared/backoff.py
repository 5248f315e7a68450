"""The one backoff rule: exponential steps with full jitter.

Retry ``n`` (1 for the first) waits a time drawn uniformly from ``[0, min(cap, base * 2**(n-1))]``.
Full jitter spreads the retries of many workers that failed together, so they do not all come back
at the same instant. Celery's ``retry_backoff``/``retry_jitter`` options compute the same rule, so
the tasks Celery retries itself are given these numbers (``worker.retry``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final

#: First step and cap, in seconds (whole seconds: Celery's own backoff takes integers).
BACKOFF_BASE_S: Final = 2
BACKOFF_CAP_S: Final = 60


def compute_backoff(
    attempts: int,
    *,
    base: float = BACKOFF_BASE_S,
    cap: float = BACKOFF_CAP_S,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds before retry number ``attempts`` (1 = first retry), uniform in ``[0, step]``."""
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    step = min(cap, base * 2.0 ** min(attempts - 1, 32))
    return float(step * rand())
