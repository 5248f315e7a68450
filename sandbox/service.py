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

from sandbox.api_errors import ApiError, invalid_parameter, missing_field, validation_error
from sandbox.auth import authenticate
from sandbox.config import IDEMPOTENCY_TTL_SECONDS, SandboxConfig
from sandbox.outcomes import PlannedEvent, plan_email
from sandbox.payloads import event_body, new_message_id
from sandbox.rate_limit import DailyQuota, RateLimiter
from sandbox.scheduling import send_time
from sandbox.store import EmailRecord, EmailStore, IdempotencyStore, Stats
from sandbox.validation import check_idempotency_key, validate_batch, validate_email
from sandbox.webhooks import WebhookDispatcher

#: Smallest step between the `created_at` of successive events of one email (the payload has ms).
MIN_EVENT_STEP = 0.001
SCHEDULED = PlannedEvent("email.scheduled")


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
        #: Serializes cancels and reschedules, which replace a record's timeline and withdraw webhooks.
        self._schedule_lock = threading.Lock()

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
        email = validate_email(payload, now=self._clock())
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
        now = self._clock()
        for index, item in enumerate(items):
            try:
                valid.append((index, validate_email(item, now=now, in_batch=True)))
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
            record.plan = plan_email(record.recipients(), config, self.rng)
            if record.send_at is not None:
                self.stats.add("scheduled")
                self._emit(record, [SCHEDULED], record.created_at, config)
            self._emit_delivery(record, record.send_at or record.created_at, config)
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
            send_at=email["send_at"],
            attachments=email.get("attachment_summary") or [],
        )

    def _emit(
        self,
        record: EmailRecord,
        events: list[PlannedEvent],
        first_at: float,
        config: SandboxConfig,
        *,
        group: str | None = None,
    ) -> None:
        """Put ``events`` on the email's timeline from ``first_at`` on, and schedule their webhooks then.

        Webhooks are scheduled only if a webhook URL is set; ``group`` lets them be withdrawn.
        """
        step = max(config.webhook_event_spacing, MIN_EVENT_STEP)
        times = [first_at + index * step for index in range(len(events))]
        record.add_events([(at, event.type) for at, event in zip(times, events, strict=True)])
        if not config.webhook_url:
            return
        order = list(range(len(events)))
        if config.shuffle_webhooks:
            self.rng.shuffle(order)
        wait = max(0.0, first_at - self._clock())
        for rank, index in enumerate(order):
            body = event_body(record, events[index], times[index])
            delay = wait + rank * config.webhook_event_spacing
            self.webhooks.schedule(new_message_id(), body, delay=delay, group=group)

    def _emit_delivery(self, record: EmailRecord, start: float, config: SandboxConfig) -> None:
        """The email's delivery events, just after ``start`` (withdrawn if its schedule changes)."""
        step = max(config.webhook_event_spacing, MIN_EVENT_STEP)
        self._emit(record, record.plan, start + step, config, group=record.id)

    def cancel(self, email_id: str) -> dict[str, Any]:
        """`POST /emails/{id}/cancel`: a scheduled email is not sent; `last_event` becomes `canceled`."""
        with self._schedule_lock:
            now = self._clock()
            record = self._awaiting_send(email_id, now, "canceled")
            self.webhooks.withdraw(record.id)
            record.canceled = True
            record.forget_after(now)
            record.add_events([(now, "email.canceled")])
        self.stats.add("canceled")
        return {"object": "email", "id": record.id}

    def reschedule(self, email_id: str, payload: Any) -> dict[str, Any]:
        """`PATCH /emails/{id}` with ``{"scheduled_at"}``: a scheduled email is sent at the new time."""
        if not isinstance(payload, dict):
            raise validation_error("The request body must be a JSON object.")
        if payload.get("scheduled_at") is None:
            raise missing_field("scheduled_at")
        with self._schedule_lock:
            now = self._clock()
            record = self._awaiting_send(email_id, now, "updated")
            start = send_time(payload["scheduled_at"], now) or now
            self.webhooks.withdraw(record.id)
            record.forget_after(now)
            record.send_at = start
            self._emit_delivery(record, start, self._config)
        return {"object": "email", "id": record.id}

    def _awaiting_send(self, email_id: str, now: float, action: str) -> EmailRecord:
        record = self.find_email(email_id)
        if not record.awaiting_send(now):
            raise validation_error(f"Only a scheduled email that has not been sent yet can be {action}.")
        return record

    def find_email(self, email_id: str) -> EmailRecord:
        """The email with this id; 422 ``invalid_parameter`` if it is no UUID, 404 if it is unknown."""
        try:
            uuid.UUID(email_id)
        except ValueError:
            raise invalid_parameter("The `id` must be a valid UUID.") from None
        record = self.emails.get(email_id)
        if record is None:
            raise ApiError(404, "not_found", "Email not found")
        return record


def _pause(seconds: float) -> None:
    # time.sleep(0) still costs a system call and a GIL hand-off (~60 µs): skip it.
    if seconds > 0:
        time.sleep(seconds)


def _fingerprint(payload: Any) -> str:
    """A hash of the normalised payload (Resend compares payloads, not bytes)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
