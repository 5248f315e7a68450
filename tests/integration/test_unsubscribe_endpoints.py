"""The unsubscribe endpoints through the Flask test client, on the real PostgreSQL (fakeredis limits).

The one-click POST in both encodings, the page that never unsubscribes, the confirmation and its
undo link, and every bad input: a 4xx plain page, nothing stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from shared import connector_store as store
from shared.db import make_sessionmaker, transaction
from shared.models import EmailMessage, EmailMetric, Suppression, Task
from shared.rate_limit import RateLimiter
from shared.settings import load_settings
from shared.suppression import suppress
from shared.unsubscribe.tokens import UnsubscribeToken, generate_unsubscribe_key
from tests.unsubscribe_helpers import make_links, token_of
from tests.webhook_requests import SECRET_A
from webhook_receiver import create_app
from webhook_receiver.metrics import PrometheusMetrics
from webhook_receiver.unsubscribe.service import FAILURES_PER_WINDOW

pytestmark = pytest.mark.integration

PUBLIC_URL = "http://127.0.0.1:8000"
ONE_CLICK = "List-Unsubscribe=One-Click"


@pytest.fixture(scope="module")
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture(scope="module")
def keys() -> str:
    return generate_unsubscribe_key()


@pytest.fixture
def metrics() -> PrometheusMetrics:
    return PrometheusMetrics()


@pytest.fixture
def app(database_url: str, engine: Engine, keys: str, metrics: PrometheusMetrics, redis_prefix: str) -> Flask:
    settings = load_settings(
        database_url=database_url,
        resend_webhook_secret=SECRET_A,
        pilot_public_url=PUBLIC_URL,
        pilot_unsubscribe_keys=keys,
    )
    limiter = RateLimiter(fakeredis.FakeRedis(), key_prefix=redis_prefix)
    return create_app(settings, engine=engine, dispatcher=_NoDispatch(), metrics=metrics, limiter=limiter)


class _NoDispatch:
    def enqueue(self, event_id: str) -> None:
        raise AssertionError("no webhook in these tests")

    def ping(self) -> bool:
        return True


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass(frozen=True)
class Sent:
    """An email in the ledger and the token of its link."""

    organization_id: uuid.UUID
    task_id: uuid.UUID
    message_id: uuid.UUID
    email: str
    topic: str | None
    token: str

    @property
    def path(self) -> str:
        return f"/unsubscribe/{self.token}"


def sent_email(factory: sessionmaker[Session], keys: str, *, topic: str | None = "newsletter") -> Sent:
    email = f"ada-{uuid.uuid4().hex[:8]}@example.test"
    with transaction(factory) as session:
        organization = store.create_organization(session, "Acme Letters", actor="test")
        connector = store.create_connector(
            session, organization_id=organization.id, name="c", config={}, actor="test"
        )
        task = Task(organization_id=organization.id, name="spring")
        session.add(task)
        session.flush()
        message = EmailMessage(
            organization_id=organization.id,
            connector_id=connector.id,
            task_id=task.id,
            idempotency_key=f"k/{uuid.uuid4()}",
            recipient=email,
            subject="Spring news",
            topic=topic,
            status="delivered",
        )
        session.add(message)
        session.flush()
        ids = (organization.id, task.id, message.id)
    url = make_links(PUBLIC_URL, keys).unsubscribe_url(UnsubscribeToken(ids[0], ids[2], email, topic))
    return Sent(*ids, email, topic, token_of(url))


@pytest.fixture
def sent(factory: sessionmaker[Session], keys: str) -> Sent:
    return sent_email(factory, keys)


def entries(factory: sessionmaker[Session], sent: Sent) -> list[tuple[str, str, str | None]]:
    with factory() as session:
        rows = session.execute(
            select(Suppression.topic, Suppression.reason, Suppression.source).where(
                Suppression.organization_id == sent.organization_id, Suppression.email == sent.email
            )
        )
        return sorted(tuple(row) for row in rows)  # type: ignore[misc]


def metric_rows(factory: sessionmaker[Session], sent: Sent) -> list[EmailMetric]:
    with factory() as session:
        return list(
            session.scalars(
                select(EmailMetric).where(
                    EmailMetric.recipient == sent.email, EmailMetric.event == "unsubscribed"
                )
            )
        )


def all_entries(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(Suppression)) or 0)


# --- one-click ----------------------------------------------------------------------------------


def test_one_click_urlencoded_unsubscribes_from_the_emails_topic(client, factory, sent) -> None:
    response = client.post(sent.path, data=ONE_CLICK, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 200
    assert entries(factory, sent) == [("newsletter", "unsubscribed", "one_click")]


def test_one_click_multipart_unsubscribes_too(client, factory, sent) -> None:
    response = client.post(
        sent.path, data={"List-Unsubscribe": "One-Click"}, content_type="multipart/form-data"
    )

    assert response.status_code == 200
    assert entries(factory, sent) == [("newsletter", "unsubscribed", "one_click")]


def test_one_click_answers_plainly_without_redirect_or_cookie(client, sent) -> None:
    response = client.post(sent.path, data=ONE_CLICK, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 200
    assert "Location" not in response.headers
    assert "Set-Cookie" not in response.headers


def test_one_click_for_an_email_without_a_topic_leaves_everything(client, factory, keys) -> None:
    sent = sent_email(factory, keys, topic=None)

    client.post(sent.path, data=ONE_CLICK, content_type="application/x-www-form-urlencoded")

    assert entries(factory, sent) == [("", "unsubscribed", "one_click")]


def test_one_click_twice_is_one_entry_and_one_metric_row(client, factory, sent) -> None:
    for _ in range(2):
        response = client.post(sent.path, data=ONE_CLICK, content_type="application/x-www-form-urlencoded")
        assert response.status_code == 200

    assert len(entries(factory, sent)) == 1
    assert len(metric_rows(factory, sent)) == 1


def test_one_click_records_a_metric_row_linked_to_the_email(client, factory, sent) -> None:
    client.post(sent.path, data=ONE_CLICK, content_type="application/x-www-form-urlencoded")

    [row] = metric_rows(factory, sent)
    assert (row.message_id, row.task_id) == (sent.message_id, sent.task_id)
    assert row.metadata_["topic"] == "newsletter"
    assert row.metadata_["source"] == "one_click"


def test_one_click_counts_in_the_tasks_delivery_metrics_by_topic(client, factory, sent) -> None:
    client.post(sent.path, data=ONE_CLICK, content_type="application/x-www-form-urlencoded")

    with factory() as session:
        task = session.get(Task, sent.task_id)
        assert task is not None
        delivery = task.execution_result["delivery"]
    assert delivery["unsubscribed"] == 1
    assert delivery["unsubscribed_by_topic"] == {"newsletter": 1}


def test_one_click_is_counted_in_prometheus(client, sent, metrics) -> None:
    client.post(sent.path, data=ONE_CLICK, content_type="application/x-www-form-urlencoded")

    assert metrics.unsubscribes.labels("one_click", "topic")._value.get() == 1


def test_a_token_outlives_the_ledger_row(client, factory, sent) -> None:
    with transaction(factory) as session:
        session.execute(delete(EmailMessage).where(EmailMessage.id == sent.message_id))

    response = client.post(sent.path, data=ONE_CLICK, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 200
    assert entries(factory, sent) == [("newsletter", "unsubscribed", "one_click")]


def test_one_click_never_weakens_a_bounce(client, factory, keys) -> None:
    sent = sent_email(factory, keys, topic=None)
    with transaction(factory) as session:
        suppress(session, sent.organization_id, sent.email, "hard_bounce", source="resend_webhook")

    client.post(sent.path, data=ONE_CLICK, content_type="application/x-www-form-urlencoded")

    assert entries(factory, sent) == [("", "hard_bounce", "resend_webhook")]


# --- the page -----------------------------------------------------------------------------------


def test_opening_the_page_does_not_unsubscribe(client, factory, sent) -> None:
    response = client.get(sent.path)

    assert response.status_code == 200
    assert entries(factory, sent) == []


def test_the_page_names_the_organization_and_the_topic_and_offers_both(client, sent) -> None:
    page = client.get(sent.path).get_data(as_text=True)

    assert "Acme Letters" in page
    assert "Unsubscribe from newsletter" in page
    assert "Unsubscribe from everything" in page
    assert sent.email not in page  # masked: a•••@example.test


def test_the_page_loads_nothing_from_elsewhere(client, sent) -> None:
    response = client.get(sent.path)
    page = response.get_data(as_text=True)

    assert "http://" not in page and "https://" not in page and "src=" not in page
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_the_topic_button_leaves_the_topic_and_confirms_with_an_undo_link(client, factory, sent) -> None:
    response = client.post(sent.path, data={"scope": "topic"})

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "no longer receive “newsletter” emails from Acme Letters" in page
    assert f"{PUBLIC_URL}/resubscribe/" in page
    assert entries(factory, sent) == [("newsletter", "unsubscribed", "unsubscribe_page")]


def test_the_everything_button_leaves_everything(client, factory, sent) -> None:
    client.post(sent.path, data={"scope": "everything"})

    assert entries(factory, sent) == [("", "unsubscribed", "unsubscribe_page")]


def undo_path(page: str) -> str:
    start = page.index(f"{PUBLIC_URL}/resubscribe/") + len(PUBLIC_URL)
    return page[start : page.index('"', start)]


def test_the_undo_link_asks_first_then_resubscribes(client, factory, sent) -> None:
    undo = undo_path(client.post(sent.path, data={"scope": "topic"}).get_data(as_text=True))

    asked = client.get(undo)
    assert asked.status_code == 200
    assert entries(factory, sent) != []

    done = client.post(undo, data={}, content_type="application/x-www-form-urlencoded")
    assert done.status_code == 200
    assert entries(factory, sent) == []


def test_the_undo_link_never_removes_a_bounce(client, factory, keys) -> None:
    sent = sent_email(factory, keys, topic=None)
    undo = undo_path(client.post(sent.path, data={"scope": "everything"}).get_data(as_text=True))
    with transaction(factory) as session:
        suppress(session, sent.organization_id, sent.email, "hard_bounce", source="resend_webhook")

    client.post(undo, data={}, content_type="application/x-www-form-urlencoded")

    assert entries(factory, sent) == [("", "hard_bounce", "resend_webhook")]


# --- bad input: 4xx plain pages, nothing stored -----------------------------------------------------


@pytest.mark.parametrize(
    "token",
    ["garbage", "A" * 40, "x" * 2000, "%00", "..%2F..%2Fetc", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
)
def test_garbage_tokens_are_a_404_plain_page(client, factory, token: str) -> None:
    before = all_entries(factory)

    for response in (
        client.get(f"/unsubscribe/{token}"),
        client.post(
            f"/unsubscribe/{token}", data=ONE_CLICK, content_type="application/x-www-form-urlencoded"
        ),
        client.get(f"/resubscribe/{token}"),
    ):
        assert response.status_code == 404
        assert response.mimetype == "text/html"
        assert "not valid" in response.get_data(as_text=True)
    assert all_entries(factory) == before


def test_a_changed_token_is_a_404_that_stores_nothing(client, factory, sent) -> None:
    changed = sent.token[:-3] + ("AAA" if not sent.token.endswith("AAA") else "BBB")

    response = client.post(
        f"/unsubscribe/{changed}", data=ONE_CLICK, content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 404
    assert entries(factory, sent) == []


def test_an_unsubscribe_token_is_not_an_undo_link(client, factory, sent) -> None:
    response = client.post(
        f"/resubscribe/{sent.token}", data={}, content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 404


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_a_405_plain_page(client, factory, sent, method: str) -> None:
    response = client.open(sent.path, method=method, data=ONE_CLICK)

    assert response.status_code == 405
    assert response.mimetype == "text/html"
    assert entries(factory, sent) == []


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/xml", None])
def test_other_content_types_are_a_415(client, factory, sent, content_type: str | None) -> None:
    response = client.post(sent.path, data=ONE_CLICK, content_type=content_type)

    assert response.status_code == 415
    assert response.mimetype == "text/html"
    assert entries(factory, sent) == []


def test_an_oversized_body_is_a_413(client, factory, sent) -> None:
    body = ONE_CLICK + "&pad=" + "x" * 10_000

    response = client.post(sent.path, data=body, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 413
    assert entries(factory, sent) == []


def test_an_oversized_body_beyond_the_webhook_limit_is_a_413_too(client, factory, sent) -> None:
    response = client.post(sent.path, data="x" * 400_000, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 413
    assert entries(factory, sent) == []


@pytest.mark.parametrize(
    "body",
    ["", "List-Unsubscribe=Two-Clicks", "scope=nothing", "List-Unsubscribe", "%ff%fe=%00"],
)
def test_a_form_that_is_neither_is_a_400(client, factory, sent, body: str) -> None:
    response = client.post(sent.path, data=body, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert entries(factory, sent) == []


def test_a_broken_multipart_body_is_a_400(client, factory, sent) -> None:
    response = client.post(sent.path, data="--x\r\nnonsense", content_type="multipart/form-data; boundary=x")

    assert response.status_code == 400
    assert entries(factory, sent) == []


def test_a_client_guessing_tokens_is_stopped(client, sent) -> None:
    for _ in range(FAILURES_PER_WINDOW):
        assert client.get("/unsubscribe/guess").status_code == 404

    assert client.get("/unsubscribe/guess").status_code == 429
    assert client.get(sent.path).status_code == 429  # even with a good token, for a while


def test_other_clients_are_not_stopped_by_one_guessing(client, sent) -> None:
    for _ in range(FAILURES_PER_WINDOW + 1):
        client.get("/unsubscribe/guess", environ_base={"REMOTE_ADDR": "203.0.113.9"})

    assert client.get(sent.path, environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code == 200
