"""The coalescing measure of the end-to-end test (tests.request_trace): what a request left behind."""

from __future__ import annotations

from typing import Any

from tests.request_trace import Request, Straggler, left_behind, requests_of


def _email(to: str, at: float, key: str) -> dict[str, Any]:
    return {"id": f"id-{to}", "to": [to], "created_at": at, "idempotency_key": key}


def test_emails_sharing_an_idempotency_key_are_one_request_left_when_the_first_was_accepted() -> None:
    emails = [_email("b", 2.0, "unit-2"), _email("a", 1.0, "unit-1"), _email("c", 2.001, "unit-2")]

    assert requests_of(emails) == [
        Request(left_at=1.0, recipients=frozenset({"a"})),
        Request(left_at=2.0, recipients=frozenset({"b", "c"})),
    ]


def test_requests_that_each_took_every_waiting_row_leave_nothing_behind() -> None:
    queued_at = {"a": 0.0, "b": 0.2, "c": 0.3, "d": 1.1}
    requests = [
        Request(0.1, frozenset({"a"})),
        Request(0.6, frozenset({"b", "c"})),
        Request(1.2, frozenset({"d"})),
    ]

    assert left_behind(requests, queued_at, full=100, lag=0.5) == []


def test_a_send_path_of_one_email_per_request_leaves_the_waiting_rows_behind() -> None:
    queued_at = {"a": 0.0, "b": 0.0, "c": 0.0}
    requests = [
        Request(1.0, frozenset({"a"})),
        Request(2.0, frozenset({"b"})),
        Request(3.0, frozenset({"c"})),
    ]

    assert left_behind(requests, queued_at, full=100, lag=0.5) == [
        Straggler("b", 0, 1.0),
        Straggler("c", 0, 1.0),
        Straggler("c", 1, 2.0),
    ]


def test_a_full_request_may_leave_waiting_rows_for_the_next() -> None:
    queued_at = {"a": 0.0, "b": 0.0, "c": 0.0}
    requests = [Request(1.0, frozenset({"a", "b"})), Request(2.0, frozenset({"c"}))]

    assert left_behind(requests, queued_at, full=2, lag=0.5) == []


def test_rows_queued_within_the_lag_before_a_request_left_may_go_in_the_next() -> None:
    queued_at = {"a": 0.0, "b": 0.8}
    requests = [Request(1.0, frozenset({"a"})), Request(1.5, frozenset({"b"}))]

    assert left_behind(requests, queued_at, full=100, lag=0.5) == []
