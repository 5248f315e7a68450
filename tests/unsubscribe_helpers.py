"""Helpers for unsubscribe tests: keys, links, tokens of a known recipient."""

from __future__ import annotations

import uuid

from shared.settings import load_settings
from shared.unsubscribe.links import UnsubscribeLinks
from shared.unsubscribe.tokens import UnsubscribeToken, generate_unsubscribe_key

PUBLIC_URL = "https://mail.example.test"


def make_links(public_url: str = PUBLIC_URL, *keys: str) -> UnsubscribeLinks:
    """Links of ``public_url`` sealed with ``keys`` (one new key when none is given)."""
    settings = load_settings(
        pilot_public_url=public_url, pilot_unsubscribe_keys=" ".join(keys or (generate_unsubscribe_key(),))
    )
    links = UnsubscribeLinks.from_settings(settings)
    assert links is not None
    return links


def token_of(url: str) -> str:
    """The token at the end of an unsubscribe (or undo) URL."""
    return url.rstrip(">").rsplit("/", 1)[1]


def a_token(
    *,
    organization_id: uuid.UUID | None = None,
    email: str = "ada@example.test",
    topic: str | None = "newsletter",
    message_id: uuid.UUID | None = None,
) -> UnsubscribeToken:
    """A token naming ``email`` (new ids unless given)."""
    return UnsubscribeToken(organization_id or uuid.uuid4(), message_id or uuid.uuid4(), email, topic)
