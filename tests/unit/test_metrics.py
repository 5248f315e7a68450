"""worker.metrics: each update lands on its series; bucket samples are throttled; the directory set-up."""

from __future__ import annotations

import os
import uuid

import fakeredis
import pytest
from prometheus_client import REGISTRY, values

from shared.rate_limit import ConnectorLimits, RateLimiter
from worker import metrics


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def limiter(redis_prefix: str) -> RateLimiter:
    return RateLimiter(fakeredis.FakeRedis(), key_prefix=redis_prefix, clock_ms=lambda: 1_000_000)


def test_count_results_adds_one_per_recipient_by_result() -> None:
    before = {r: value("pilot_sends_total", result=r) for r in ("sent", "failed")}

    metrics.count_results(["sent", "sent", "failed"])

    assert value("pilot_sends_total", result="sent") == before["sent"] + 2
    assert value("pilot_sends_total", result="failed") == before["failed"] + 1


@pytest.mark.parametrize(
    ("status", "error_name", "labels"),
    [
        (200, None, {"status": "200", "error_name": ""}),
        (429, "rate_limit_exceeded", {"status": "429", "error_name": "rate_limit_exceeded"}),
        (None, None, {"status": "none", "error_name": ""}),
    ],
)
def test_count_response_labels_status_and_error_name(status, error_name, labels) -> None:
    before = value("pilot_resend_responses_total", **labels)

    metrics.count_response(status, error_name)

    assert value("pilot_resend_responses_total", **labels) == before + 1


def test_count_deferrals_adds_the_rows_under_their_reason() -> None:
    before = value("pilot_deferrals_total", reason="hour")

    metrics.count_deferrals("hour", 3)

    assert value("pilot_deferrals_total", reason="hour") == before + 3


def test_observe_task_records_a_duration_under_the_task_name() -> None:
    before = value("pilot_task_duration_seconds_count", task="pilot.test")

    metrics.observe_task("pilot.test", 0.02)

    assert value("pilot_task_duration_seconds_count", task="pilot.test") == before + 1


def test_sample_buckets_sets_the_tokens_left_per_window(limiter: RateLimiter) -> None:
    connector_id, limits = uuid.uuid4(), ConnectorLimits(per_hour=100, per_day=1000)
    limiter.acquire_emails(connector_id, 7, limits)

    metrics.sample_buckets(limiter, connector_id, limits)

    cid = str(connector_id)
    assert value("pilot_bucket_tokens_remaining", connector_id=cid, window="hour") == 93
    assert value("pilot_bucket_tokens_remaining", connector_id=cid, window="day") == 993


def test_sample_buckets_samples_a_connector_at_most_once_per_interval(limiter: RateLimiter) -> None:
    connector_id, limits = uuid.uuid4(), ConnectorLimits(per_hour=100, per_day=1000)
    metrics.sample_buckets(limiter, connector_id, limits)
    limiter.acquire_emails(connector_id, 5, limits)

    metrics.sample_buckets(limiter, connector_id, limits)  # within the interval: not read again

    assert value("pilot_bucket_tokens_remaining", connector_id=str(connector_id), window="hour") == 100


def test_prepare_directory_empties_a_configured_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)  # restored after the test
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    (tmp_path / "counter_123.db").write_bytes(b"old")

    directory, owned = metrics.prepare_directory()

    assert (directory, owned) == (str(tmp_path), False)
    assert list(tmp_path.iterdir()) == []


def test_prepare_directory_makes_a_fresh_one_when_none_is_configured(monkeypatch) -> None:
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)

    directory, owned = metrics.prepare_directory()

    try:
        assert owned and os.environ[metrics.MULTIPROC_ENV] == directory
    finally:
        metrics.Exporter(directory, owned).stop()
        # Not monkeypatch.delenv: it would record the value set above and restore it at teardown,
        # leaking multiprocess mode into every later test.
        os.environ.pop(metrics.MULTIPROC_ENV, None)


def test_start_exporter_is_off_on_port_zero() -> None:
    from shared.settings import load_settings

    assert metrics.start_exporter(load_settings(pilot_worker_metrics_port=0)) is None
