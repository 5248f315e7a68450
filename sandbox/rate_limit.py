"""Per-API-key request rate (fixed windows, Resend's `ratelimit-*` headers) and the daily email quota."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sandbox.api_errors import ApiError


@dataclass(frozen=True)
class RateDecision:
    """The outcome of one request against its key's window, with the headers Resend sends."""

    allowed: bool
    limit: int
    remaining: int
    reset: int

    def headers(self) -> dict[str, str]:
        """``ratelimit-*`` headers (IETF draft 06, as Resend), plus ``retry-after`` when refused."""
        headers = {
            "ratelimit-limit": str(self.limit),
            "ratelimit-remaining": str(self.remaining),
            "ratelimit-reset": str(self.reset),
            # Observed on Resend's answers though undocumented.
            "ratelimit-policy": f"{self.limit};w={max(1, self.reset)}",
        }
        if not self.allowed:
            headers["retry-after"] = str(self.reset)
        return headers


class RateLimiter:
    """``per_second`` requests per key, counted in fixed windows starting at a key's first request.

    A rate below 1/s becomes one request per ``1/rate`` seconds. Refused requests use nothing.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str, per_second: float) -> RateDecision:
        """Count one request for ``key`` if its window has room."""
        limit = max(1, round(per_second))
        window = limit / per_second
        now = self._clock()
        with self._lock:
            start, used = self._windows.get(key, (now, 0))
            if now - start >= window:
                start, used = now, 0
            allowed = used < limit
            if allowed:
                used += 1
            self._windows[key] = (start, used)
        reset = max(1, math.ceil(start + window - now))
        return RateDecision(allowed, limit, limit - used, reset)

    def clear(self) -> None:
        """Forget every window."""
        with self._lock:
            self._windows.clear()


class DailyQuota:
    """Emails per API key per UTC day (each recipient counts one, as Resend counts)."""

    def __init__(self, *, today: Callable[[], date] = lambda: datetime.now(UTC).date()) -> None:
        self._today = today
        self._lock = threading.Lock()
        self._used: dict[tuple[str, date], int] = {}

    def take(self, key: str, emails: int, quota: int) -> int:
        """Count ``emails`` against ``key``'s quota and return the day's total, or raise 429."""
        day = self._today()
        with self._lock:
            used = self._used.get((key, day), 0)
            if quota and used + emails > quota:
                raise ApiError(
                    429,
                    "daily_quota_exceeded",
                    "You have reached your daily email sending quota.",
                    headers={"x-resend-daily-quota": str(used)},
                )
            self._used[(key, day)] = used + emails
            return used + emails

    def clear(self) -> None:
        """Forget every count."""
        with self._lock:
            self._used.clear()
