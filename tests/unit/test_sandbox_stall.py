"""The sandbox's stall fault: a share of sends hangs before it is accepted, its key in flight."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from sandbox.app import create_app
from sandbox.config import SandboxConfig
from sandbox.service import Sandbox

AUTH = {"Authorization": "Bearer re_test_key"}
EMAIL = {"from": "a@example.com", "to": "b@example.com", "subject": "Hi", "html": "<p>x</p>"}


def make_sandbox(**switches: Any) -> tuple[Any, Sandbox]:
    app = create_app(SandboxConfig(**{"rate_limit_per_second": 0.0, "seed": 7, **switches}))
    return app, app.extensions["sandbox"]


def post(app: Any, key: str) -> int:
    response = app.test_client().post("/emails", json=EMAIL, headers={**AUTH, "Idempotency-Key": key})
    return int(response.status_code)


def test_stalled_send_is_accepted_after_the_stall_and_counted() -> None:
    app, state = make_sandbox(stall_rate=1.0, stall_seconds=0.2)
    started = time.monotonic()
    assert post(app, "stall-1") == 200
    assert time.monotonic() - started >= 0.2
    assert len(state.emails.listing()) == 1
    assert state.stats.snapshot()["counts"]["stalled"] == 1


def test_retry_during_a_stall_is_told_the_key_is_in_flight() -> None:
    app, state = make_sandbox(stall_rate=1.0, stall_seconds=0.5)
    first: list[int] = []
    thread = threading.Thread(target=lambda: first.append(post(app, "stall-2")))
    thread.start()
    deadline = time.monotonic() + 5
    while not state.stats.snapshot()["counts"].get("stalled") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert post(app, "stall-2") == 409
    thread.join()
    assert first == [200] and len(state.emails.listing()) == 1


def test_no_stall_by_default() -> None:
    _, state = make_sandbox()
    assert state.config.stall_rate == 0.0


@pytest.mark.parametrize("switches", [{"stall_rate": 1.5}, {"stall_seconds": -1.0}])
def test_stall_switches_are_checked(switches: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SandboxConfig(**switches)
