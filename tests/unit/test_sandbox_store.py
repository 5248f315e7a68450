"""Idempotency keys (kept 24 h, replayed, released on failure) and the email store's accept counts."""

from __future__ import annotations

from sandbox.config import IDEMPOTENCY_TTL_SECONDS
from sandbox.store import EmailRecord, EmailStore, IdempotencyStore, Stats

SCOPE = ("re_key", "/emails", "k-1")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_claim_then_complete_then_replay() -> None:
    store = IdempotencyStore(ttl=IDEMPOTENCY_TTL_SECONDS, clock=FakeClock())
    assert store.claim(SCOPE, "fp") == "started"
    store.complete(SCOPE, 200, {"id": "e-1"})
    assert store.claim(SCOPE, "fp") == (200, {"id": "e-1"})


def test_claim_reports_in_flight_and_mismatch() -> None:
    store = IdempotencyStore(ttl=IDEMPOTENCY_TTL_SECONDS, clock=FakeClock())
    store.claim(SCOPE, "fp")
    assert store.claim(SCOPE, "fp") == "in_flight"
    store.complete(SCOPE, 200, {})
    assert store.claim(SCOPE, "other") == "mismatch"


def test_keys_expire_after_24_hours() -> None:
    clock = FakeClock()
    store = IdempotencyStore(ttl=IDEMPOTENCY_TTL_SECONDS, clock=clock)
    store.claim(SCOPE, "fp")
    store.complete(SCOPE, 200, {})
    clock.now += IDEMPOTENCY_TTL_SECONDS - 1
    assert store.claim(SCOPE, "other") == "mismatch"
    clock.now += 1
    assert store.claim(SCOPE, "other") == "started"


def test_released_key_can_be_claimed_again() -> None:
    store = IdempotencyStore(ttl=IDEMPOTENCY_TTL_SECONDS, clock=FakeClock())
    store.claim(SCOPE, "fp")
    store.release(SCOPE)
    assert store.claim(SCOPE, "other") == "started"


def test_accept_counts_are_per_recipient_case_insensitive_and_key() -> None:
    store = EmailStore()
    store.add([EmailRecord("e1", "a@b.co", ["X@example.com"], "s", 1.0, "k")])
    store.add([EmailRecord("e2", "a@b.co", ["x@example.com"], "s", 2.0, "k")])
    store.add([EmailRecord("e3", "a@b.co", ["x@example.com"], "s", 3.0, None)])
    assert [e["accept_count"] for e in store.listing()] == [2, 2, 1]


def test_last_event_is_the_latest_that_happened() -> None:
    record = EmailRecord("e1", "a@b.co", ["x@example.com"], "s", 1.0, None)
    record.timeline = [(2.0, "email.sent"), (3.0, "email.delivered")]
    assert [record.last_event(t) for t in (1.5, 2.5, 3.5)] == ["queued", "sent", "delivered"]


def test_stats_histogram_counts_requests_by_second() -> None:
    clock = FakeClock()
    stats = Stats(clock=clock)
    stats.request()
    stats.request()
    clock.now += 1
    stats.request()
    assert stats.snapshot()["requests_per_second"] == {"1000": 2, "1001": 1}
