"""The sandbox's behaviour behind the HTTP views: auth, limits, idempotency, faults, accepting emails."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.api_errors import ApiError, validation_error
from sandbox.auth import authenticate
from sandbox.config import IDEMPOTENCY_TTL_SECONDS, SandboxConfig
from sandbox.outcomes import plan_events
from sandbox.payloads import event_body, new_message_id
from sandbox.rate_limit import DailyQuota, RateLimiter
from sandbox.store import EmailRecord, EmailStore, IdempotencyStore, Stats
from sandbox.validation import check_idempotency_key, validate_batch, validate_email
from sandbox.webhooks import WebhookDispatcher

#: Smallest step between the `created_at` of successive events of one email (the payload has ms).
MIN_EVENT_STEP = 0.001


@dataclass(frozen=True)
class SendResult:
    """A send's answer, and whether to drop the connection instead of giving it (fault injection)."""

    status: int
    body: Any
    drop: bool = False


class Sandbox:
    """All in-memory state of one sandbox server and the operations on it."""

    def __init__(self, config: SandboxConfig, *, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._config_lock = threading.Lock()
        self._clock = clock
        self.rng = random.Random(config.seed)
        self.stats = Stats()
        self.emails = EmailStore()
        self.idempotency = IdempotencyStore(ttl=IDEMPOTENCY_TTL_SECONDS)
        self.limiter = RateLimiter()
        self.quota = DailyQuota()
        self.webhooks = WebhookDispatcher(config=lambda: self._config, stats=self.stats, rng=self.rng)

    @property
    def config(self) -> SandboxConfig:
        """The switches in force now."""
        return self._config

    def clock(self) -> float:
        """Wall-clock time as the sandbox sees it (injectable for tests)."""
        return self._clock()

    def reconfigure(self, switches: dict[str, Any]) -> SandboxConfig:
        """Apply run-time ``switches`` (``ValueError`` if one is unknown or invalid)."""
        with self._config_lock:
            self._config = self._config.with_switches(switches)
            return self._config

    def reset(self) -> None:
        """Forget emails, keys, counters, windows and waiting webhooks."""
        for part in (self.emails, self.idempotency, self.limiter, self.quota, self.stats, self.webhooks):
            part.clear()

    def close(self) -> None:
        """Stop the webhook threads."""
        self.webhooks.close()

    def guard(self, authorization: str | None, *, sending: bool) -> tuple[str, dict[str, str]]:
        """Count the request, check its key and rate; the key and the headers to add to the answer."""
        self.stats.request()
        config = self._config
        key = authenticate(authorization, config, sending=sending)
        headers: dict[str, str] = {}
        if config.rate_limit_per_second > 0:
            decision = self.limiter.hit(key, config.rate_limit_per_second)
            headers = decision.headers()
            if not decision.allowed:
                self.stats.add("rate_limited")
                raise ApiError(
                    429,
                    "rate_limit_exceeded",
                    "Too many requests. You can only make "
                    f"{decision.limit} requests per second. See rate limit response headers.",
                    headers=headers,
                )
        if not sending:
            _pause(config.latency)  # sends pause inside their idempotency claim instead
        elif self.rng.random() < config.error_rate:
            self.stats.add("injected_errors")
            raise ApiError(500, "application_error", "An unexpected error occurred.", headers=headers)
        return key, headers

    def send_email(self, key: str, idempotency_key: str | None, payload: Any) -> SendResult:
        """`POST /emails`."""
        check_idempotency_key(idempotency_key)
        email = validate_email(payload)
        return self._idempotent(
            key, "/emails", idempotency_key, payload, lambda: self._accept_one(key, email, idempotency_key)
        )

    def send_batch(self, key: str, idempotency_key: str | None, payload: Any, mode: str | None) -> SendResult:
        """`POST /emails/batch` in ``strict`` (default) or ``permissive`` validation mode."""
        check_idempotency_key(idempotency_key)
        mode = (mode or "strict").lower()
        if mode not in ("strict", "permissive"):
            raise validation_error("Invalid `x-batch-validation` header: use `strict` or `permissive`.")
        items = validate_batch(payload)
        valid: list[tuple[int, dict[str, Any]]] = []
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            try:
                valid.append((index, validate_email(item, in_batch=True)))
            except ApiError as exc:
                if mode == "strict":
                    raise
                errors.append({"index": index, "message": exc.message})

        def accept() -> dict[str, Any]:
            records = self._accept([email for _, email in valid], key, idempotency_key)
            body: dict[str, Any] = {"data": [{"id": record.id} for record in records]}
            if mode == "permissive":
                body["errors"] = errors
            return body

        return self._idempotent(key, "/emails/batch", idempotency_key, payload, accept)

    def _idempotent(
        self, key: str, endpoint: str, idempotency_key: str | None, payload: Any, accept: Callable[[], Any]
    ) -> SendResult:
        config = self._config
        if idempotency_key is None:
            self._delay(config)
            return SendResult(200, accept(), drop=self.rng.random() < config.drop_rate)
        scope = (key, endpoint, idempotency_key)
        claim = self.idempotency.claim(scope, _fingerprint(payload))
        if claim == "in_flight":
            raise ApiError(
                409,
                "concurrent_idempotent_requests",
                "Same idempotency key used while original request is still in progress.",
            )
        if claim == "mismatch":
            raise ApiError(
                409,
                "invalid_idempotent_request",
                "Same idempotency key used with a different request payload.",
            )
        if isinstance(claim, tuple):
            self.stats.add("idempotent_replays")
            return SendResult(*claim)
        try:
            # Latency sits inside the claimed section so concurrent retries see the key in flight.
            self._delay(config)
            body = accept()
        except BaseException:
            self.idempotency.release(scope)
            raise
        self.idempotency.complete(scope, 200, body)
        return SendResult(200, body, drop=self.rng.random() < config.drop_rate)

    def _delay(self, config: SandboxConfig) -> None:
        """The configured latency, and now and then a stall (``stall_rate``, ``stall_seconds``)."""
        _pause(config.latency)
        if config.stall_rate and self.rng.random() < config.stall_rate:
            self.stats.add("stalled")
            _pause(config.stall_seconds)

    def _accept_one(self, key: str, email: dict[str, Any], idempotency_key: str | None) -> dict[str, Any]:
        return {"id": self._accept([email], key, idempotency_key)[0].id}

    def _accept(
        self, emails: list[dict[str, Any]], key: str, idempotency_key: str | None
    ) -> list[EmailRecord]:
        config = self._config
        count = sum(len(e["to"]) + len(e.get("cc") or []) + len(e.get("bcc") or []) for e in emails)
        self.quota.take(key, count, config.daily_quota)
        records = [self._record(email, idempotency_key) for email in emails]
        for record in records:
            self._plan(record, config)
        self.emails.add(records)
        self.stats.add("accepted", len(records))
        return records

    def _record(self, email: dict[str, Any], idempotency_key: str | None) -> EmailRecord:
        return EmailRecord(
            id=str(uuid.uuid4()),
            sender=email["from"],
            to=email["to"],
            subject=email.get("subject") or "",
            created_at=self._clock(),
            idempotency_key=idempotency_key,
            tags=email["tags"],
            headers=email.get("headers") or {},
            cc=email.get("cc") or [],
            bcc=email.get("bcc") or [],
            reply_to=email.get("reply_to") or [],
            html=email.get("html"),
            text=email.get("text"),
            scheduled_at=email.get("scheduled_at"),
        )

    def _plan(self, record: EmailRecord, config: SandboxConfig) -> None:
        """Fill the email's timeline and schedule its webhooks (only if a webhook URL is set)."""
        step = max(config.webhook_event_spacing, MIN_EVENT_STEP)
        for recipient in record.to:
            events = plan_events(recipient, config, self.rng)
            times = [record.created_at + (index + 1) * step for index in range(len(events))]
            record.timeline.extend((at, event.type) for at, event in zip(times, events, strict=True))
            if not config.webhook_url:
                continue
            order = list(range(len(events)))
            if config.shuffle_webhooks:
                self.rng.shuffle(order)
            for rank, index in enumerate(order):
                body = event_body(record, recipient, events[index], times[index])
                self.webhooks.schedule(new_message_id(), body, delay=rank * config.webhook_event_spacing)
        record.timeline.sort()


def _pause(seconds: float) -> None:
    # time.sleep(0) still costs a system call and a GIL hand-off (~60 µs): skip it.
    if seconds > 0:
        time.sleep(seconds)


def _fingerprint(payload: Any) -> str:
    """A hash of the normalised payload (Resend compares payloads, not bytes)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
