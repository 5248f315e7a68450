"""Topics and unsubscribe links on the send path (real PostgreSQL, fake Resend, fakeredis buckets).

An address that left one topic still gets the others and mail without a topic; one suppressed for
everything gets nothing. Bulk emails carry the one-click headers, and a retry sends the same bytes.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from shared.sending import pipeline
from shared.sending.context import SendContext
from shared.suppression import suppress
from tests.fake_resend import error_body
from tests.send_helpers import add_connector, email, rows, send_payload, sends, stored_requests
from tests.unsubscribe_helpers import PUBLIC_URL, make_links

pytestmark = pytest.mark.integration


@pytest.fixture
def linked(ctx: SendContext) -> SendContext:
    """The send context, making unsubscribe links."""
    ctx.unsubscribe = make_links()
    return ctx


def leave(factory: sessionmaker[Session], organization_id: uuid.UUID, address: str, topic: str = "") -> None:
    with transaction(factory) as session:
        suppress(session, organization_id, address, "unsubscribed", source="one_click", topic=topic)


def statuses(factory: sessionmaker[Session], connector_id: uuid.UUID) -> dict[tuple[str, str | None], str]:
    return {(row.recipient, row.topic): row.status for row in rows(factory, connector_id)}


def batch(connector_id: uuid.UUID, *emails: dict[str, Any]) -> dict[str, Any]:
    return {"connector_id": str(connector_id), "emails": list(emails)}


def test_an_address_that_left_a_topic_still_gets_other_topics_and_mail_without_one(
    linked, factory, ids
) -> None:
    organization_id, connector_id = ids
    leave(factory, organization_id, "ann@example.test", "newsletter")

    pipeline.send_batch(
        linked,
        batch(
            connector_id,
            email("ann@example.test", topic="newsletter"),
            email("ann@example.test", topic="product-updates"),
            email("ann@example.test", subject="Your invoice"),
        ),
        task_ref="t1",
    )

    assert statuses(factory, connector_id) == {
        ("ann@example.test", "newsletter"): "suppressed",
        ("ann@example.test", "product-updates"): "sent",
        ("ann@example.test", None): "sent",
    }


def test_an_address_suppressed_for_everything_gets_nothing(linked, factory, ids) -> None:
    organization_id, connector_id = ids
    leave(factory, organization_id, "bob@example.test")

    pipeline.send_batch(
        linked,
        batch(
            connector_id,
            email("bob@example.test", topic="newsletter"),
            email("bob@example.test", subject="x"),
        ),
        task_ref="t1",
    )

    assert set(statuses(factory, connector_id).values()) == {"suppressed"}


def test_a_single_email_of_a_topic_left_is_not_sent_alone_either(linked, resend, factory, ids) -> None:
    organization_id, connector_id = ids
    leave(factory, organization_id, "cy@example.test", "newsletter")

    outcome = pipeline.send_email(
        linked, send_payload(connector_id, "cy@example.test", topic="newsletter"), task_ref="t1"
    )

    assert outcome.results[0].status == "suppressed"
    assert sends(resend) == []


def test_a_single_email_of_another_topic_goes(linked, resend, factory, ids) -> None:
    organization_id, connector_id = ids
    leave(factory, organization_id, "di@example.test", "newsletter")

    outcome = pipeline.send_email(
        linked, send_payload(connector_id, "di@example.test", topic="offers"), task_ref="t1"
    )

    assert outcome.results[0].status == "sent"


def test_a_topic_left_for_one_organization_is_not_left_for_another(linked, factory, ids) -> None:
    leave(factory, ids[0], "eve@example.test", "newsletter")
    _, other_connector = add_connector(factory)

    pipeline.send_batch(
        linked, batch(other_connector, email("eve@example.test", topic="newsletter")), task_ref="t"
    )

    assert set(statuses(factory, other_connector).values()) == {"sent"}


def test_every_email_of_a_batch_carries_the_one_click_headers(linked, resend, factory, ids) -> None:
    _, connector_id = ids

    pipeline.send_batch(
        linked, batch(connector_id, email("fa@example.test"), email("gu@example.test")), task_ref="t"
    )

    [call] = sends(resend)
    for body in json.loads(call.content):
        assert body["headers"]["List-Unsubscribe"].startswith(f"<{PUBLIC_URL}/unsubscribe/")
        assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_send_email_carries_them_only_when_it_asks(linked, resend, ids) -> None:
    _, connector_id = ids

    pipeline.send_email(linked, send_payload(connector_id, "ha@example.test"), task_ref="t1")
    pipeline.send_email(
        linked, send_payload(connector_id, "ib@example.test", list_unsubscribe=True), task_ref="t2"
    )

    plain, asked = (json.loads(call.content) for call in sends(resend))
    assert "List-Unsubscribe" not in plain["headers"]
    assert "List-Unsubscribe" in asked["headers"]


def test_a_retry_sends_the_same_headers_and_bytes(
    linked, resend, factory, ids, clock, key_hash, scheduler
) -> None:
    _, connector_id = ids
    resend.reply(500, error_body(500, "internal_server_error", "boom"))
    payload = send_payload(
        connector_id, "jo@example.test", list_unsubscribe=True, html="<a href='{{unsubscribe_url}}'>x</a>"
    )

    pipeline.send_email(linked, payload, task_ref="t1")
    [(_, backoff)] = [call for call in scheduler.calls if call[1] > 0]
    clock.advance(backoff)
    pipeline.dispatch(linked, key_hash)

    first, retry = sends(resend)
    assert first.content == retry.content
    assert json.loads(first.content)["headers"]["List-Unsubscribe"].startswith(f"<{PUBLIC_URL}/unsubscribe/")


def test_a_redelivered_task_renders_the_same_stored_request(linked, factory, ids) -> None:
    _, connector_id = ids
    payload = batch(
        connector_id, email("ki@example.test", topic="newsletter", html="<p>{{unsubscribe_url}}</p>")
    )

    pipeline.send_batch(linked, payload, task_ref="celery-1")
    stored = stored_requests(factory, connector_id)
    again = pipeline.send_batch(linked, payload, task_ref="celery-1")

    assert stored_requests(factory, connector_id) == stored
    assert again.results[0].status == "sent"


def test_the_same_caller_key_with_another_topic_is_a_conflict(linked, factory, ids) -> None:
    _, connector_id = ids
    first = send_payload(connector_id, "lu@example.test", idempotency_key="promo-1", topic="newsletter")
    second = {**first, "topic": "offers"}

    pipeline.send_email(linked, first, task_ref="t1")
    outcome = pipeline.send_email(linked, second, task_ref="t2")

    assert outcome.results[0].status == "failed"
    assert "idempotency_key" in str(outcome.results[0].reason)


def test_the_same_caller_key_and_content_after_a_key_rotation_is_the_same_email(linked, factory, ids) -> None:
    _, connector_id = ids
    payload = send_payload(connector_id, "mo@example.test", idempotency_key="promo-2", list_unsubscribe=True)

    pipeline.send_email(linked, payload, task_ref="t1")
    linked.unsubscribe = make_links()
    outcome = pipeline.send_email(linked, payload, task_ref="t1")

    assert outcome.results[0].status == "sent"
    assert len(rows(factory, connector_id)) == 1
