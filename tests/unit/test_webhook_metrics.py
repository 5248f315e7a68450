"""webhook_receiver.metrics: rejections counted by reason through the Flask test client.

Every request here is refused before storage, so the app's database is never reached (the URL points
nowhere). Stored and duplicate counts, which need PostgreSQL, are in the integration tests.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from shared.settings import load_settings
from tests.webhook_factories import resend_body
from tests.webhook_requests import NOW, PATH, SECRET_A, SECRET_OTHER, SignedRequest, signed
from webhook_receiver import create_app
from webhook_receiver.metrics import PrometheusMetrics, rejection_reason

BODY = resend_body("delivered", "56761188-7520-42d8-8898-ff6fc54ce618")


class RecordingDispatcher:
    def enqueue(self, event_id: str) -> None:
        raise AssertionError("nothing is stored in these tests")

    def ping(self) -> bool:
        return True


@pytest.fixture
def app() -> Flask:
    settings = load_settings(
        database_url="postgresql+psycopg://postgres@127.0.0.1:1/unused",
        resend_webhook_secret=SECRET_A,
        pilot_webhook_max_body_bytes=1024,
    )
    return create_app(settings, dispatcher=RecordingDispatcher(), clock=lambda: NOW)


def samples(app: Flask) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, by name and labels."""
    text = app.test_client().get("/metrics").get_data(as_text=True)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def rejected(app: Flask, reason: str) -> float:
    return samples(app).get(("pilot_webhooks_rejected_total", (("reason", reason),)), 0.0)


def post(app: Flask, request: SignedRequest, **kwargs: Any) -> int:
    return app.test_client().post(PATH, data=request.body, headers=request.headers, **kwargs).status_code


REJECTIONS: list[Any] = [
    pytest.param(lambda app: post(app, signed(BODY, secret=SECRET_OTHER)), "signature", id="forged"),
    pytest.param(lambda app: post(app, signed(BODY, timestamp=NOW - 301)), "timestamp", id="old"),
    pytest.param(
        lambda app: post(app, signed(BODY).with_headers(svix_signature=None)), "headers", id="missing"
    ),
    pytest.param(lambda app: post(app, signed(BODY).with_headers(svix_id="msg é")), "headers", id="bad-id"),
    pytest.param(lambda app: post(app, signed(b"[1]")), "malformed", id="not-an-object"),
    pytest.param(lambda app: post(app, signed(b"x" * 2000)), "too_large", id="too-large"),
    pytest.param(
        lambda app: post(app, signed(BODY).with_headers(content_type="text/plain")), "content_type", id="type"
    ),
    pytest.param(lambda app: app.test_client().get(PATH).status_code, "method", id="get"),
]


@pytest.mark.parametrize(("send", "reason"), REJECTIONS)
def test_metrics_rejection_counted_once_under_its_reason(app: Flask, send: Any, reason: str) -> None:
    status = send(app)
    assert 400 <= status < 500
    assert rejected(app, reason) == 1
    assert samples(app)[("pilot_webhooks_received_total", ())] == 1


def test_metrics_rejection_reason_label_never_carries_input(app: Flask) -> None:
    post(app, signed(BODY).with_headers(svix_timestamp="not-a-time"))
    labels = {dict(labels).get("reason") for name, labels in samples(app) if name.startswith("pilot_")}
    assert labels <= {
        None,
        "signature",
        "timestamp",
        "headers",
        "too_large",
        "content_type",
        "method",
        "malformed",
        "slow_body",
    }


def test_metrics_latency_histogram_counts_every_webhook_request(app: Flask) -> None:
    post(app, signed(BODY, secret=SECRET_OTHER))
    app.test_client().get(PATH)
    assert samples(app)[("pilot_webhook_request_seconds_count", ())] == 2


def test_metrics_other_routes_are_not_counted(app: Flask) -> None:
    app.test_client().get("/metrics")
    assert samples(app)[("pilot_webhooks_received_total", ())] == 0


def test_metrics_each_app_counts_in_its_own_registry(app: Flask) -> None:
    post(app, signed(BODY, secret=SECRET_OTHER))
    other = create_app(
        load_settings(
            database_url="postgresql+psycopg://postgres@127.0.0.1:1/unused", resend_webhook_secret=SECRET_A
        )
    )
    assert samples(other)[("pilot_webhooks_received_total", ())] == 0


class NullMetrics:
    """Records nothing (a receiver whose metrics nobody reads)."""

    def observe(self, status: int, seconds: float, outcome: str | None) -> None:
        """Do nothing."""


def test_metrics_null_metrics_serve_no_metrics_route() -> None:
    settings = load_settings(
        database_url="postgresql+psycopg://postgres@127.0.0.1:1/x", resend_webhook_secret=SECRET_A
    )
    app = create_app(settings, metrics=NullMetrics())
    assert app.test_client().get("/metrics").status_code == 404


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("missing header svix-timestamp", "headers"),
        ("missing header webhook-signature", "headers"),
        ("malformed header svix-id", "headers"),
        ("malformed header svix-timestamp", "timestamp"),
        ("timestamp too old", "timestamp"),
        ("timestamp too new", "timestamp"),
        ("no matching signature", "signature"),
        ("unverifiable request (KeyError)", "malformed"),
    ],
)
def test_rejection_reason_maps_verification_reasons(reason: str, expected: str) -> None:
    assert rejection_reason(reason) == expected


def test_prometheus_metrics_observe_counts_outcomes() -> None:
    metrics = PrometheusMetrics()
    for outcome in ("stored", "stored", "duplicate", "signature", None):
        metrics.observe(200, 0.002, outcome)
    registry = metrics.registry
    assert registry.get_sample_value("pilot_webhooks_received_total") == 5
    assert registry.get_sample_value("pilot_webhooks_stored_total") == 2
    assert registry.get_sample_value("pilot_webhooks_duplicates_total") == 1
    assert registry.get_sample_value("pilot_webhooks_rejected_total", {"reason": "signature"}) == 1


def test_importing_the_gunicorn_config_leaves_prometheus_client_unimported() -> None:
    # The arbiter imports the config before its hooks set PROMETHEUS_MULTIPROC_DIR.
    code = "import sys, webhook_receiver.gunicorn_conf; sys.exit('prometheus_client' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
