"""Thread-safe in-memory state: accepted emails, idempotency keys and counters."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sandbox.outcomes import PlannedEvent

#: Per-second request counts kept for `GET /_sandbox/stats` (the last hour).
HISTOGRAM_SECONDS = 3600


@dataclass
class EmailRecord:
    """One accepted email, as `GET /emails/{id}` and `GET /_sandbox/emails` show it."""

    id: str
    sender: str
    to: list[str]
    subject: str
    created_at: float
    idempotency_key: str | None
    tags: list[dict[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    reply_to: list[str] = field(default_factory=list)
    html: str | None = None
    text: str | None = None
    #: When a scheduled email is sent (epoch seconds); None for an email sent at once.
    send_at: float | None = None
    canceled: bool = False
    #: Each attachment as received: filename, content_type, content_id, path, and for ``content`` its
    #: decoded size and sha256 (the bytes themselves are not kept).
    attachments: list[dict[str, Any]] = field(default_factory=list)
    #: The events its delivery produces (kept to shift them when the schedule changes).
    plan: list[PlannedEvent] = field(default_factory=list)
    #: (time the event happens, Resend event type), in order. Replaced, never changed in place, so a
    #: concurrent reader sees the old or the new list.
    timeline: list[tuple[float, str]] = field(default_factory=list)

    def last_event(self, now: float) -> str:
        """Resend's `last_event`: the latest event that has happened by ``now`` (else ``queued``)."""
        happened = [kind for at, kind in self.timeline if at <= now]
        return happened[-1].removeprefix("email.") if happened else "queued"

    def recipients(self) -> list[str]:
        """Every mailbox the email goes to: to, cc and bcc."""
        return [*self.to, *self.cc, *self.bcc]

    def awaiting_send(self, now: float) -> bool:
        """Whether it is scheduled, not canceled, and its time has not come."""
        return self.send_at is not None and not self.canceled and now < self.send_at

    def add_events(self, events: list[tuple[float, str]]) -> None:
        """Add ``(time, type)`` events, in time order, to the timeline (at equal times, after the others)."""
        if not self.timeline:
            self.timeline = events
            return
        self.timeline = sorted([*self.timeline, *events], key=lambda entry: entry[0])

    def forget_after(self, now: float) -> None:
        """Drop the events that have not happened by ``now`` (a cancel or a new schedule)."""
        self.timeline = [entry for entry in self.timeline if entry[0] <= now]


class EmailStore:
    """Accepted emails by id, and how many times each (recipient, idempotency key) was accepted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._emails: dict[str, EmailRecord] = {}
        self._accepts: Counter[tuple[str, str | None]] = Counter()

    def add(self, records: list[EmailRecord]) -> None:
        """Record accepted emails."""
        with self._lock:
            for record in records:
                self._emails[record.id] = record
                for recipient in record.to:
                    self._accepts[(recipient.lower(), record.idempotency_key)] += 1

    def get(self, email_id: str) -> EmailRecord | None:
        """The email with this id, if accepted."""
        with self._lock:
            return self._emails.get(email_id)

    def listing(self) -> list[dict[str, Any]]:
        """Every accepted email with its accept counts, oldest first."""
        with self._lock:
            records = list(self._emails.values())
            accepts = dict(self._accepts)
        return [_listed(record, accepts) for record in records]

    def clear(self) -> None:
        """Forget every email."""
        with self._lock:
            self._emails.clear()
            self._accepts.clear()

    def __len__(self) -> int:
        return len(self._emails)


def _listed(record: EmailRecord, accepts: dict[tuple[str, str | None], int]) -> dict[str, Any]:
    counts = {to: accepts.get((to.lower(), record.idempotency_key), 0) for to in record.to}
    return {
        "id": record.id,
        "from": record.sender,
        "to": record.to,
        "subject": record.subject,
        "tags": record.tags,
        "headers": record.headers,
        "idempotency_key": record.idempotency_key,
        "created_at": record.created_at,
        "send_at": record.send_at,
        "attachments": record.attachments,
        "accept_count": max(counts.values(), default=0),
        "accept_counts": counts,
        "events": [kind for _, kind in record.timeline],
    }


@dataclass
class _IdempotencyEntry:
    fingerprint: str
    expires_at: float
    response: tuple[int, Any] | None = None


Claim = Literal["started", "in_flight", "mismatch"]


class IdempotencyStore:
    """Resend's idempotency keys: one answer per (API key, endpoint, key) for ``ttl`` seconds."""

    def __init__(self, *, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str, str], _IdempotencyEntry] = {}

    def claim(self, scope: tuple[str, str, str], fingerprint: str) -> Claim | tuple[int, Any]:
        """Start a request under ``scope``, or say why not: the stored answer, in flight, or mismatch."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(scope)
            if entry is None or entry.expires_at <= now:
                self._entries[scope] = _IdempotencyEntry(fingerprint, now + self._ttl)
                return "started"
            if entry.response is None:
                return "in_flight"
            if entry.fingerprint != fingerprint:
                return "mismatch"
            return entry.response

    def complete(self, scope: tuple[str, str, str], status: int, body: Any) -> None:
        """Store the answer to replay for the rest of the key's lifetime."""
        with self._lock:
            entry = self._entries.get(scope)
            if entry is not None:
                entry.response = (status, body)

    def release(self, scope: tuple[str, str, str]) -> None:
        """Forget a key whose request failed before anything was sent, so a retry runs again."""
        with self._lock:
            self._entries.pop(scope, None)

    def clear(self) -> None:
        """Forget every key."""
        with self._lock:
            self._entries.clear()


class Stats:
    """Counters and a per-second histogram of API requests."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._per_second: Counter[int] = Counter()

    def request(self) -> None:
        """Count one API request in its wall-clock second."""
        second = int(self._clock())
        with self._lock:
            self._counts["requests"] += 1
            self._per_second[second] += 1
            if len(self._per_second) > HISTOGRAM_SECONDS:
                del self._per_second[min(self._per_second)]

    def add(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to counter ``name``."""
        with self._lock:
            self._counts[name] += amount

    def snapshot(self) -> dict[str, Any]:
        """The counters and the histogram ``{unix second: requests}``."""
        with self._lock:
            counts = dict(self._counts)
            histogram = {str(second): n for second, n in sorted(self._per_second.items())}
        return {"counts": counts, "requests_per_second": histogram}

    def clear(self) -> None:
        """Reset every counter."""
        with self._lock:
            self._counts.clear()
            self._per_second.clear()
