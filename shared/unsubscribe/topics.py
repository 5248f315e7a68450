"""Topics: which suppression entries stop which emails.

An entry names the topic it stops, or none (:data:`EVERYTHING`, stored as ``''``) to stop every
email: an address that left one topic still gets the others and emails without a topic, one
suppressed for everything gets nothing.
"""

from __future__ import annotations

from enum import StrEnum

from marketing_pilot_client.fields import TOPIC_PATTERN as TOPIC_PATTERN
from marketing_pilot_client.fields import Topic as Topic

#: The stored topic of an entry that stops every email of the organization.
EVERYTHING = ""
# TOPIC_PATTERN and Topic are part of the payload contract: marketing_pilot_client.fields.

#: SQL: the entry ``{entry}`` stops an email of topic ``{topic}`` (NULL: the email has none).
ENTRY_STOPS_EMAIL = "({entry}.topic = '' OR {entry}.topic = {topic})"


class Scope(StrEnum):
    """What a recipient leaves: the email's topic, or everything."""

    TOPIC = "topic"
    EVERYTHING = "everything"


def stops(entry_topic: str, email_topic: str | None) -> bool:
    """Whether an entry for ``entry_topic`` stops an email of ``email_topic`` (None: no topic)."""
    return entry_topic == EVERYTHING or (email_topic is not None and entry_topic == email_topic)


def entry_topic(scope: Scope, email_topic: str | None) -> str:
    """The topic a suppression entry gets when a recipient of an email of ``email_topic`` leaves
    ``scope``: leaving an email without a topic leaves everything."""
    if scope is Scope.EVERYTHING or email_topic is None:
        return EVERYTHING
    return email_topic
