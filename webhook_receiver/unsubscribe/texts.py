"""Every string the unsubscribe pages show, in one place (one dict per language, English first).

Templates name strings by key; values may hold ``{name}`` fields, filled by the page (and escaped).
"""

from __future__ import annotations

from collections.abc import Mapping

ENGLISH: Mapping[str, str] = {
    "lang": "en",
    "title_choose": "Unsubscribe",
    "title_done": "You are unsubscribed",
    "title_undo": "Subscribe again",
    "title_undone": "You are subscribed again",
    "title_error": "Link not valid",
    "intro_topic": "You receive “{topic}” emails from {organization} at {address}.",
    "intro_all": "You receive emails from {organization} at {address}.",
    "choose_legend": "What would you like to stop receiving?",
    "button_topic": "Unsubscribe from {topic}",
    "button_all": "Unsubscribe from everything",
    "hint_all": "You will get no more emails from {organization}, except replies to what you ask for.",
    "done_topic": "You will no longer receive “{topic}” emails from {organization}.",
    "done_all": "You will no longer receive emails from {organization}.",
    "undo_intro": "Unsubscribed by mistake?",
    "undo_link": "Undo: subscribe me again",
    "undo_hint": "This link works for {days} days.",
    "undo_question_topic": "Receive “{topic}” emails from {organization} at {address} again?",
    "undo_question_all": "Receive emails from {organization} at {address} again?",
    "button_undo": "Subscribe me again",
    "undone": "Done: you will receive these emails again.",
    "undone_nothing": "There was nothing to undo: you are subscribed.",
    "error_not_found": "This link is not valid, or it has expired.",
    "error_bad_request": "This request could not be understood.",
    "error_method": "This page does not accept that kind of request.",
    "error_too_large": "This request is too large.",
    "error_content_type": "This request must be a form.",
    "error_rate_limited": "Too many requests from your address. Please wait a few minutes and try again.",
    "error_unavailable": "This service is unavailable for a moment. Please try again later.",
    "one_click_done": "unsubscribed",
}

#: The strings pages use now; localisation would choose among several dicts by Accept-Language.
TEXTS = ENGLISH
