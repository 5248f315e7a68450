"""Unsubscribe links: the URL of a token, the RFC 8058 headers, and the placeholder in a body.

An email's link is ``PILOT_PUBLIC_URL + /unsubscribe/<token>``. Bulk emails carry it in two headers::

    List-Unsubscribe: <https://mail.example.com/unsubscribe/TOKEN>
    List-Unsubscribe-Post: List-Unsubscribe=One-Click

and :data:`PLACEHOLDER` (``{{unsubscribe_url}}``) in the html or text part is replaced by the same
URL, for the visible footer link.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.settings import Settings
from shared.unsubscribe.tokens import ResubscribeToken, TokenSealer, UnsubscribeToken

#: Written in an html or text part, replaced by the email's unsubscribe URL.
PLACEHOLDER = "{{unsubscribe_url}}"
UNSUBSCRIBE_PATH = "/unsubscribe/"
RESUBSCRIBE_PATH = "/resubscribe/"
LIST_UNSUBSCRIBE = "List-Unsubscribe"
LIST_UNSUBSCRIBE_POST = "List-Unsubscribe-Post"
#: The value of ``List-Unsubscribe-Post``, and the body a mailbox provider posts (RFC 8058).
ONE_CLICK = "List-Unsubscribe=One-Click"
#: What is missing when a send asks for a link and the process cannot make one.
NOT_CONFIGURED = "PILOT_PUBLIC_URL and PILOT_UNSUBSCRIBE_KEYS must both be set to make unsubscribe links"


@dataclass(frozen=True)
class UnsubscribeLinks:
    """Makes the links of one deployment: its public URL and its token keys."""

    public_url: str
    sealer: TokenSealer

    @classmethod
    def from_settings(cls, settings: Settings) -> UnsubscribeLinks | None:
        """Links for ``PILOT_PUBLIC_URL`` and ``PILOT_UNSUBSCRIBE_KEYS``; None unless both are set."""
        if settings.pilot_public_url is None or not settings.pilot_unsubscribe_keys:
            return None
        return cls(settings.pilot_public_url, TokenSealer.from_settings(settings))

    def unsubscribe_url(self, token: UnsubscribeToken) -> str:
        """``<public URL>/unsubscribe/<token>``."""
        return self.public_url + UNSUBSCRIBE_PATH + self.sealer.seal_unsubscribe(token)

    def resubscribe_url(self, token: ResubscribeToken) -> str:
        """``<public URL>/resubscribe/<token>``: the undo link of a confirmation page."""
        return self.public_url + RESUBSCRIBE_PATH + self.sealer.seal_resubscribe(token)


def list_headers(url: str) -> dict[str, str]:
    """The RFC 8058 headers naming ``url``."""
    return {LIST_UNSUBSCRIBE: f"<{url}>", LIST_UNSUBSCRIBE_POST: ONE_CLICK}


def has_list_unsubscribe(headers: dict[str, str] | None) -> bool:
    """Whether the caller's ``headers`` set ``List-Unsubscribe`` already (any case): theirs wins."""
    return any(name.lower() == LIST_UNSUBSCRIBE.lower() for name in headers or {})


def fill(text: str | None, url: str) -> str | None:
    """``text`` with every :data:`PLACEHOLDER` replaced by ``url``."""
    return None if text is None else text.replace(PLACEHOLDER, url)


def has_placeholder(*texts: str | None) -> bool:
    """Whether any of ``texts`` holds :data:`PLACEHOLDER`."""
    return any(text is not None and PLACEHOLDER in text for text in texts)
