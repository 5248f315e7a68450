"""Asynchronous, signed webhook delivery with Resend's retry schedule.

A few threads share one due-time heap and one pooled ``httpx.Client``. Each event keeps its ``svix-id``
across retries and gets a fresh timestamp and signature per attempt (Standard Webhooks spec).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from sandbox.config import SandboxConfig
from sandbox.store import Stats
from shared.webhook_signature import signature_headers

logger = logging.getLogger(__name__)

#: Delay before each attempt, measured from the previous failure (Resend "retries and replays"):
#: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. Multiplied by the time scale.
ATTEMPT_DELAYS = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
USER_AGENT = "Svix-Webhooks/1.0 (sandbox; https://www.svix.com/http-sender)"


def retry_delay(failed_attempts: int, time_scale: float) -> float | None:
    """Seconds from the ``failed_attempts``-th failure to the next attempt, or None: give up."""
    if failed_attempts >= len(ATTEMPT_DELAYS):
        return None
    return ATTEMPT_DELAYS[failed_attempts] * time_scale


@dataclass(order=True)
class Delivery:
    """One event waiting to be posted; ordered by due time (monotonic clock)."""

    due: float
    seq: int
    svix_id: str = field(compare=False)
    body: bytes = field(compare=False, repr=False)
    attempts: int = field(default=0, compare=False)
    duplicate: bool = field(default=False, compare=False)
    #: Deliveries of one group can be withdrawn together before they are due (a canceled schedule).
    group: str | None = field(default=None, compare=False)


class WebhookDispatcher:
    """Posts scheduled deliveries to the configured URL; threads start on first use."""

    def __init__(
        self,
        *,
        config: Callable[[], SandboxConfig],
        stats: Stats,
        rng: random.Random,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._stats = stats
        self._rng = rng
        self._http = http
        self._clock = clock
        self._seq = itertools.count()
        self._heap: list[Delivery] = []
        self._in_flight = 0
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def schedule(self, svix_id: str, body: bytes, *, delay: float = 0.0, group: str | None = None) -> None:
        """Deliver ``body`` as event ``svix_id`` after ``delay`` seconds."""
        self._push(Delivery(self._clock() + delay, next(self._seq), svix_id, body, group=group))

    def withdraw(self, group: str) -> int:
        """Drop the waiting deliveries of ``group`` (attempts in flight go on); how many were dropped."""
        with self._cond:
            kept = [delivery for delivery in self._heap if delivery.group != group]
            dropped = len(self._heap) - len(kept)
            if dropped:
                heapq.heapify(kept)
                self._heap = kept
            return dropped

    def pending(self) -> int:
        """Deliveries waiting or being attempted."""
        with self._cond:
            return len(self._heap) + self._in_flight

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is waiting or in flight (True), or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(timeout=min(remaining, 0.05))
            return True

    def clear(self) -> None:
        """Drop every waiting delivery."""
        with self._cond:
            self._heap.clear()

    def close(self) -> None:
        """Stop the threads (waiting deliveries are dropped) and close the HTTP client."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._http is not None:
            self._http.close()

    def _push(self, delivery: Delivery) -> None:
        with self._cond:
            if self._closed:
                return
            if not self._threads:
                self._start()
            heapq.heappush(self._heap, delivery)
            self._cond.notify()

    def _start(self) -> None:
        if self._http is None:
            threads = self._config().webhook_threads
            self._http = httpx.Client(
                limits=httpx.Limits(max_connections=threads), headers={"user-agent": USER_AGENT}
            )
        for index in range(self._config().webhook_threads):
            thread = threading.Thread(target=self._run, name=f"sandbox-webhooks-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self) -> None:
        while (delivery := self._next_due()) is not None:
            try:
                self._attempt(delivery)
            except Exception:  # a bug here must not kill the thread and strand the queue
                logger.exception("webhook delivery crashed")
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _next_due(self) -> Delivery | None:
        with self._cond:
            while not self._closed:
                now = self._clock()
                if self._heap and self._heap[0].due <= now:
                    self._in_flight += 1
                    return heapq.heappop(self._heap)
                self._cond.wait(timeout=self._heap[0].due - now if self._heap else None)
            return None

    def _attempt(self, delivery: Delivery) -> None:
        config = self._config()
        url, secret = config.webhook_url, config.webhook_secret
        if not url or not secret:
            self._stats.add("webhooks_unsent")
            return
        delivery.attempts += 1
        if self._post(url, secret, config.webhook_timeout, delivery):
            self._stats.add("webhooks_sent")
            if not delivery.duplicate and self._rng.random() < config.duplicate_webhooks:
                self._stats.add("webhooks_duplicated")
                copy = Delivery(
                    self._clock(), next(self._seq), delivery.svix_id, delivery.body, duplicate=True
                )
                self._push(copy)
            return
        self._stats.add("webhook_attempts_failed")
        delay = retry_delay(delivery.attempts, config.webhook_time_scale)
        if delay is None:
            self._stats.add("webhooks_failed")
            return
        delivery.due = self._clock() + delay
        self._push(delivery)

    def _post(self, url: str, secret: str, timeout: float, delivery: Delivery) -> bool:
        headers = signature_headers(secret, delivery.svix_id, delivery.body)
        headers["content-type"] = "application/json"
        http = self._http
        if http is None:  # unreachable: _start() creates it before any delivery is queued
            return False
        try:
            response = http.post(url, content=delivery.body, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            logger.debug(
                "webhook %s attempt %d failed: %s", delivery.svix_id, delivery.attempts, type(exc).__name__
            )
            return False
        # Svix: any 2xx is a success; everything else, 3xx included, is a failure.
        return 200 <= response.status_code < 300
