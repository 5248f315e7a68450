"""The receiver's ``/metrics``: stored and duplicate counts, and counts summed across gunicorn workers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from shared.db import make_engine
from shared.settings import load_settings
from tests.receiver_process import ReceiverHandle, running_receiver
from tests.webhook_factories import resend_body
from tests.webhook_requests import NOW, PATH, SECRET_A, SECRET_OTHER, SignedRequest, signed
from webhook_receiver import create_app

VALID, REPLAYS, FORGED = 40, 15, 10


class NullDispatcher:
    def enqueue(self, event_id: str) -> None:
        pass

    def ping(self) -> bool:
        return True


def scrape(text: str) -> dict[str, float]:
    """Samples of the ``pilot_*`` series by name, a labelled one as ``name{reason}``."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            reason = sample.labels.get("reason")
            out[f"{sample.name}{{{reason}}}" if reason else sample.name] = sample.value
    return out


@pytest.fixture
def engine(fresh_database_url: str) -> Iterator[Engine]:
    engine = make_engine(load_settings(database_url=fresh_database_url))
    yield engine
    engine.dispose()


@pytest.fixture
def app(fresh_database_url: str, engine: Engine) -> Flask:
    settings = load_settings(database_url=fresh_database_url, resend_webhook_secret=SECRET_A)
    return create_app(settings, engine=engine, dispatcher=NullDispatcher(), clock=lambda: NOW)


def test_metrics_stored_and_duplicate_counted(app: Flask) -> None:
    client = app.test_client()
    request = signed(resend_body("delivered", "e-1"))
    for _ in range(3):
        client.post(PATH, data=request.body, headers=request.headers)
    samples = scrape(client.get("/metrics").get_data(as_text=True))
    assert samples["pilot_webhooks_stored_total"] == 1
    assert samples["pilot_webhooks_duplicates_total"] == 2
    assert samples["pilot_webhooks_received_total"] == 3


@pytest.fixture
def receiver(fresh_database_url: str, isolated_redis_url: str) -> Iterator[ReceiverHandle]:
    with running_receiver(
        database_url=fresh_database_url, broker_url=isolated_redis_url, secret=SECRET_A, workers=2
    ) as handle:
        yield handle


def deliveries() -> list[SignedRequest]:
    now = int(time.time())
    valid = [signed(resend_body("delivered", f"e-{i}"), timestamp=now) for i in range(VALID)]
    replays = [
        signed(valid[i].body, msg_id=valid[i].headers["svix-id"], timestamp=now + 1) for i in range(REPLAYS)
    ]
    forged = [
        signed(resend_body("delivered", "f"), secret=SECRET_OTHER, timestamp=now) for _ in range(FORGED)
    ]
    return valid + replays + forged


def test_gunicorn_metrics_are_summed_across_workers(receiver: ReceiverHandle) -> None:
    # Given valid deliveries, replays of some of them and forged ones, sent over many connections
    requests = deliveries()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda r: httpx.post(receiver.webhook_url, content=r.body, headers=r.headers),
                requests[:VALID],
            )
        )
        statuses = list(
            pool.map(
                lambda r: httpx.post(receiver.webhook_url, content=r.body, headers=r.headers),
                requests[VALID:],
            )
        )
    assert [s.status_code for s in statuses] == [200] * REPLAYS + [400] * FORGED
    # When /metrics is scraped (each scrape a new connection, served by either worker)
    scrapes = [scrape(httpx.get(f"{receiver.url}/metrics").text) for _ in range(6)]
    # Then every scrape shows the counts of all workers together
    for samples in scrapes:
        assert samples["pilot_webhooks_received_total"] == VALID + REPLAYS + FORGED
        assert samples["pilot_webhooks_stored_total"] == VALID
        assert samples["pilot_webhooks_duplicates_total"] == REPLAYS
        assert samples["pilot_webhooks_rejected_total{signature}"] == FORGED
        assert samples["pilot_webhook_request_seconds_count"] == VALID + REPLAYS + FORGED
