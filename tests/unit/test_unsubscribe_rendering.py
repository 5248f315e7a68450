"""Unsubscribe links at render time: headers on bulk emails, the caller's own header kept, opting
out, the {{unsubscribe_url}} placeholder, topics, and the same bytes when rendered again."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from shared.errors import PayloadInvalid
from shared.sending.payloads import EmailFields, SendEmailPayload, parse_send_email
from shared.sending.rendering import LinkOptions, RenderedMessage, render_email, stored_content_hash
from shared.unsubscribe.links import UnsubscribeLinks
from tests.unsubscribe_helpers import PUBLIC_URL, make_links, token_of

CONNECTOR = uuid.UUID("5f0c6a2e-6b1e-4a57-8d3a-6c1b8f8f0a11")
ORGANIZATION = uuid.UUID("0e0c6a2e-6b1e-4a57-8d3a-6c1b8f8f0a12")
LINKS = make_links()


def email(**fields: Any) -> EmailFields:
    data = {"connector_id": str(CONNECTOR), "to": "Ada@Example.test", "subject": "Hi", "html": "<p>x</p>"}
    parsed = parse_send_email({**data, **fields})
    assert isinstance(parsed, SendEmailPayload)
    return parsed


def render(
    fields: EmailFields, *, bulk: bool = False, links: UnsubscribeLinks | None = LINKS, task_ref: str = "t1"
) -> RenderedMessage:
    [message] = render_email(
        fields,
        connector_id=CONNECTOR,
        task_ref=task_ref,
        default_from="me@example.test",
        links=LinkOptions(links, ORGANIZATION, bulk=bulk),
    )
    return message


def headers(message: RenderedMessage) -> dict[str, str]:
    found: dict[str, str] = message.request["headers"]
    return found


def test_a_bulk_email_gets_both_one_click_headers() -> None:
    message = render(email(), bulk=True)

    unsubscribe = headers(message)["List-Unsubscribe"]
    assert unsubscribe.startswith(f"<{PUBLIC_URL}/unsubscribe/") and unsubscribe.endswith(">")
    assert headers(message)["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_the_link_names_the_organization_the_row_the_recipient_and_the_topic() -> None:
    message = render(email(topic="newsletter"), bulk=True)

    token = LINKS.sealer.open_unsubscribe(token_of(headers(message)["List-Unsubscribe"]))
    assert (token.organization_id, token.message_id) == (ORGANIZATION, message.id)
    assert (token.email, token.topic) == ("ada@example.test", "newsletter")


def test_a_single_send_gets_no_headers_unless_it_asks() -> None:
    assert "List-Unsubscribe" not in headers(render(email()))
    assert "List-Unsubscribe" in headers(render(email(list_unsubscribe=True)))


def test_a_bulk_email_may_opt_out() -> None:
    message = render(email(list_unsubscribe=False), bulk=True)

    assert not {"List-Unsubscribe", "List-Unsubscribe-Post"} & set(headers(message))


def test_the_callers_own_list_unsubscribe_wins() -> None:
    own = "<mailto:leave@example.test>"
    message = render(email(headers={"list-unsubscribe": own}), bulk=True)

    assert headers(message)["list-unsubscribe"] == own
    assert "List-Unsubscribe" not in headers(message)
    assert "List-Unsubscribe-Post" not in headers(message)


def test_the_placeholder_becomes_the_same_url_as_the_header_in_html_and_text() -> None:
    fields = email(html='<a href="{{unsubscribe_url}}">leave</a>', text="Leave: {{unsubscribe_url}}")
    message = render(fields, bulk=True)

    url = headers(message)["List-Unsubscribe"].strip("<>")
    assert message.request["html"] == f'<a href="{url}">leave</a>'
    assert message.request["text"] == f"Leave: {url}"


def test_the_placeholder_is_filled_in_an_email_without_headers_too() -> None:
    message = render(email(html="<a href='{{unsubscribe_url}}'>x</a>"))

    assert f"{PUBLIC_URL}/unsubscribe/" in message.request["html"]
    assert "List-Unsubscribe" not in headers(message)


def test_rendering_again_gives_the_same_bytes() -> None:
    fields = email(html="<p>{{unsubscribe_url}}</p>", topic="newsletter")

    assert render(fields, bulk=True).request == render(fields, bulk=True).request


def test_a_key_rotation_keeps_the_stored_content_the_same_email() -> None:
    rotated = make_links(PUBLIC_URL)
    fields = email(html="<p>{{unsubscribe_url}}</p>", idempotency_key="order-1")

    before, after = render(fields, bulk=True), render(fields, bulk=True, links=rotated)

    assert before.request != after.request
    assert stored_content_hash(before.request) == stored_content_hash(after.request)


def test_a_placeholder_without_links_configured_is_refused_naming_the_field_and_the_settings() -> None:
    with pytest.raises(PayloadInvalid) as refused:
        render(email(text="bye {{unsubscribe_url}}"), links=None)

    assert "text:" in str(refused.value)
    assert "PILOT_PUBLIC_URL" in str(refused.value)


def test_asking_for_headers_without_links_configured_is_refused() -> None:
    with pytest.raises(PayloadInvalid, match=r"list_unsubscribe: .*PILOT_UNSUBSCRIBE_KEYS"):
        render(email(list_unsubscribe=True), links=None)


def test_a_bulk_email_without_links_configured_goes_without_headers() -> None:
    message = render(email(), bulk=True, links=None)

    assert "List-Unsubscribe" not in headers(message)


def test_the_topic_is_part_of_the_email() -> None:
    assert render(email(topic="newsletter")).topic == "newsletter"
    assert render(email(topic="a")).idempotency_key != render(email(topic="b")).idempotency_key


def test_an_email_without_topic_or_choice_keeps_the_key_it_always_had() -> None:
    assert render(email(), bulk=True).idempotency_key == render(email(), links=None).idempotency_key


@pytest.mark.parametrize("topic", ["", "news letter", "news/letter", "x" * 65, "ünïcode"])
def test_a_topic_must_look_like_a_tag_name(topic: str) -> None:
    with pytest.raises(PayloadInvalid, match="topic"):
        email(topic=topic)


@pytest.mark.parametrize("value", ["yes", 1, "true"])
def test_list_unsubscribe_must_be_a_boolean(value: object) -> None:
    with pytest.raises(PayloadInvalid, match="list_unsubscribe"):
        email(list_unsubscribe=value)
