"""The seed's ResendConnector.send_email/send_batch on the one send path: ledger rows, suppression,
budgets, request tokens and recorded outcomes, as for pilot.send_email (real PostgreSQL, fakeredis
buckets, a fake Resend)."""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

import fakeredis
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from shared.connectors.resend import ResendConnector, create_resend_connector
from shared.db import make_sessionmaker
from shared.models import Connector, EmailMessage
from shared.rate_limit import RateLimiter
from shared.sending import queue
from shared.settings import load_settings
from tests.fake_resend import BASE_URL, FakeResend, error_body
from tests.send_helpers import add_connector, add_suppressions, add_task, rows, sends

pytestmark = pytest.mark.integration

SENDER = "Acme <news@acme.test>"


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def resend() -> FakeResend:
    return FakeResend()


@pytest.fixture
def limiter(redis_prefix: str) -> RateLimiter:
    ticks = itertools.count(1)  # a second between checks: the request rate never stands in the way
    return RateLimiter(fakeredis.FakeRedis(), key_prefix=redis_prefix, clock_ms=lambda: next(ticks) * 1000)


@pytest.fixture
def ids(factory: sessionmaker[Session]) -> tuple[uuid.UUID, uuid.UUID]:
    return add_connector(factory, default_from=SENDER)


@pytest.fixture
def connector(
    engine: Engine, factory, ids, resend: FakeResend, limiter: RateLimiter, isolated_redis_url: str
) -> ResendConnector:
    settings = load_settings(
        database_url=engine.url.render_as_string(hide_password=False),
        redis_url=isolated_redis_url,
        resend_api_key=f"re_seed_{uuid.uuid4().hex[:12]}",
        resend_base_url=BASE_URL,
    )
    return create_resend_connector(
        ids[1], session_factory=factory, settings=settings, http=resend.client(), limiter=limiter
    )


def bodies(resend: FakeResend) -> list[dict[str, Any]]:
    found = []
    for call in sends(resend):
        body = json.loads(call.content)
        found += body if isinstance(body, list) else [body]
    return found


def test_send_email_writes_a_ledger_row_and_returns_the_resend_id(connector, resend, factory, ids) -> None:
    result = connector.send_email("a@acme.test", "Hi", "<p>Hello</p>")

    [row] = rows(factory, ids[1])
    assert (result.success, result.status, result.message_id) == (True, "sent", "email-0001")
    assert (row.status, row.resend_email_id) == ("sent", "email-0001")
    [body] = bodies(resend)
    assert (body["from"], body["to"], body["html"]) == (SENDER, ["a@acme.test"], "<p>Hello</p>")
    assert resend.last.headers["Idempotency-Key"] == row.idempotency_key


def test_send_email_with_nothing_waiting_goes_alone(connector, resend, factory, ids, monkeypatch) -> None:
    claims: list[object] = []
    claim = queue.claim
    monkeypatch.setattr(queue, "claim", lambda *args, **kwargs: claims.append(args) or claim(*args, **kwargs))

    connector.send_email("a@acme.test", "Hi", "<p>Hello</p>")

    [row] = rows(factory, ids[1])
    assert (row.status, row.attempt_key) == ("sent", row.idempotency_key)
    assert resend.last.url.path == "/emails" and claims == []


def test_send_email_to_a_suppressed_address_makes_no_request(connector, resend, factory, ids) -> None:
    add_suppressions(factory, ids[0], ["gone@acme.test"])

    result = connector.send_email("gone@acme.test", "Hi", "<p/>")

    assert (result.success, result.status) == (False, "suppressed")
    assert (result.error or "").startswith("suppressed: hard_bounce")
    assert resend.requests == []
    assert [row.status for row in rows(factory, ids[1])] == ["suppressed"]


def test_send_email_sends_one_email_per_mailbox(connector, resend) -> None:
    result = connector.send_email(["a@acme.test", "b@acme.test"], "Hi", "<p/>", bcc=["archive@acme.test"])

    assert result.success and result.status == "sent"
    assert sorted(body["to"][0] for body in bodies(resend)) == [
        "a@acme.test",
        "archive@acme.test",
        "b@acme.test",
    ]
    assert all("bcc" not in body for body in bodies(resend))
    assert len(result.metadata["recipients"]) == 3


def test_send_email_twice_sends_once(connector, resend) -> None:
    first = connector.send_email("a@acme.test", "Hi", "<p/>", task_id="t1")
    second = connector.send_email("a@acme.test", "Hi", "<p/>", task_id="t1")
    changed = connector.send_email("a@acme.test", "Hi", "<p>changed</p>", task_id="t1")

    assert first.message_id == second.message_id != changed.message_id
    assert len(sends(resend)) == 2


def test_send_email_names_its_task_in_the_header_and_counts_in_a_task_row(
    connector, resend, factory, ids
) -> None:
    task_id = add_task(factory, ids[0])

    connector.send_email("a@acme.test", "Hi", "<p/>", task_id="free-form-7")
    connector.send_email("b@acme.test", "Hi", "<p/>", task_id=task_id)

    first, second = bodies(resend)
    assert first["headers"]["X-Task-ID"] == "free-form-7"
    assert {"name": "task_id", "value": str(task_id)} in second["tags"]
    assert [row.task_id for row in rows(factory, ids[1])] == [None, task_id]


def test_send_email_sends_metadata_as_tags_where_it_fits(connector, resend) -> None:
    metadata = {"campaign": "spring-2026", "n": 3, "vip": True, "note": "has spaces", "task_id": "x"}

    result = connector.send_email("a@acme.test", "Hi", "<p/>", metadata=metadata)

    tags = {tag["name"]: tag["value"] for tag in bodies(resend)[0]["tags"]}
    assert {name: tags[name] for name in ("campaign", "n", "vip")} == {
        "campaign": "spring-2026",
        "n": "3",
        "vip": "true",
    }
    assert result.metadata["untagged_metadata"] == ["note", "task_id"]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"to": "nobody", "subject": "Hi", "body": "<p/>"}, "to.0"),
        ({"to": "a@acme.test", "subject": "", "body": "<p/>"}, "subject"),
        ({"to": "a@acme.test", "subject": "Hi", "body": "<p/>", "metadata": ["x"]}, "metadata"),
        ({"to": "a@acme.test", "subject": "Hi", "body": "<p/>", "colour": "red"}, "colour"),
        (
            {"to": "a@acme.test", "subject": "Hi", "body": "<p/>", "attachments": [{"path": "x"}]},
            "attachments",
        ),
    ],
)
def test_send_email_refuses_bad_input_naming_the_field(connector, resend, arguments, field) -> None:
    result = connector.send_email(**arguments)

    assert (result.success, result.status) == (False, "failed")
    assert field in (result.error or "")
    assert resend.requests == []


def test_a_send_over_the_budget_is_reported_deferred(
    engine, factory, resend, limiter, isolated_redis_url
) -> None:
    _, connector_id = add_connector(factory, per_hour=1, per_day=10, default_from=SENDER)
    settings = load_settings(
        database_url=engine.url.render_as_string(hide_password=False),
        redis_url=isolated_redis_url,
        resend_api_key="re_seed_budget",
        resend_base_url=BASE_URL,
    )
    connector = create_resend_connector(
        connector_id, session_factory=factory, settings=settings, http=resend.client(), limiter=limiter
    )

    first = connector.send_email("a@acme.test", "Hi", "<p/>")
    second = connector.send_email("b@acme.test", "Hi", "<p/>")

    assert first.status == "sent"
    assert (second.success, second.status) == (False, "deferred")
    assert "next_attempt_at" in second.metadata and len(sends(resend)) == 1


def test_a_key_error_fails_the_send_and_the_connector(connector, resend, factory, ids) -> None:
    resend.reply(403, error_body(403, "invalid_api_key", "API key is invalid"))

    first = connector.send_email("a@acme.test", "Hi", "<p/>")
    second = connector.send_email("b@acme.test", "Hi", "<p/>")

    assert first.status == "failed" and "API key is invalid" in (first.error or "")
    assert connector.status == "error" and "is error" in (second.error or "")
    with factory() as session:
        assert session.get_one(Connector, ids[1]).status == "error"
    assert len(resend.requests) == 1


def test_send_batch_sends_the_emails_in_one_request_and_refuses_a_bad_one_alone(
    connector, resend, factory, ids
) -> None:
    emails = [{"to": f"r{n}@acme.test", "subject": f"S{n}", "body": "<p/>"} for n in range(3)]
    emails.insert(1, {"to": "nobody", "subject": "S", "body": "<p/>"})

    result = connector.send_batch(emails)

    assert (result.total_sent, result.successful, result.failed) == (4, 3, 1)
    assert "to.0" in (result.results[1].error or "")
    [call] = sends(resend)
    assert call.url.path == "/emails/batch" and len(json.loads(call.content)) == 3
    with factory() as session:
        statuses = session.scalars(
            select(EmailMessage.status).where(EmailMessage.connector_id == ids[1])
        ).all()
    assert sorted(statuses) == ["failed", "sent", "sent", "sent"]


def test_send_batch_of_nothing_sends_nothing(connector, resend) -> None:
    result = connector.send_batch([])

    assert (result.total_sent, result.results) == (0, [])
    assert resend.requests == []
