"""The API key's request token, with short pacing waits slept in the worker.

A wait up to :data:`PACE_SLEEP_MAX_S` costs less slept than scheduled (a broker message and a
countdown the worker's main process holds). Longer waits and the cooldown after a 429 go back to the
caller, which schedules the key's next dispatch.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.rate_limit import Decision, RateLimiter

#: Longest pacing wait slept in the worker rather than spent as a task retry.
PACE_SLEEP_MAX_S = 0.05
#: Sleeps before the caller gets the refusal (other workers may keep winning the next token).
MAX_PACE_SLEEPS = 3


def take_request_token(limiter: RateLimiter, key_hash: str, sleep: Callable[[float], None]) -> Decision:
    """One request token for the API key ``key_hash``; the refusal only after a long wait or a few
    short ones.

    Raises what :meth:`RateLimiter.acquire_request_for` raises.
    """
    decision = limiter.acquire_request_for(key_hash)
    for _ in range(MAX_PACE_SLEEPS):
        if decision.granted or decision.blocked_by != "requests" or decision.wait_seconds > PACE_SLEEP_MAX_S:
            return decision
        sleep(decision.wait_seconds)
        decision = limiter.acquire_request_for(key_hash)
    return decision
