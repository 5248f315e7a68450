"""The unsubscribe pages: server-rendered HTML from Jinja templates, with no external asset.

Accessible without JavaScript: one ``<main>`` with a heading, real ``<form>`` buttons whose text is
their label, a visible focus ring, text that reflows down to 320 px, the document's language set.
Everything a visitor reads comes from :mod:`webhook_receiver.unsubscribe.texts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import DictLoader, Environment, select_autoescape

from webhook_receiver.unsubscribe.texts import TEXTS

_STYLE = """
:root { color-scheme: light dark; }
body { font: 1rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; padding: 1rem;
       background: Canvas; color: CanvasText; }
main { max-width: 34rem; margin: 2rem auto; }
h1 { font-size: 1.5rem; line-height: 1.25; margin: 0 0 1rem; }
p { margin: 0 0 1rem; overflow-wrap: anywhere; }
fieldset { border: 0; padding: 0; margin: 0 0 1rem; }
legend { font-weight: 600; margin-bottom: .5rem; padding: 0; }
form { margin: 0 0 .75rem; }
button { font: inherit; width: 100%; min-height: 2.75rem; padding: .6rem 1rem; border-radius: .4rem;
         border: 2px solid #1a4fa3; background: #1a4fa3; color: #fff; cursor: pointer; }
button.secondary { background: transparent; color: inherit; }
button:focus-visible, a:focus-visible { outline: 3px solid #f5a623; outline-offset: 2px; }
a { color: inherit; }
.hint { font-size: .9rem; opacity: .85; }
"""

_BASE = """<!doctype html>
<html lang="{{ t.lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<meta name="referrer" content="no-referrer">
<title>{% block title %}{% endblock %}</title>
<style>{{ style }}</style>
</head>
<body>
<main>
{% block main %}{% endblock %}
</main>
</body>
</html>
"""

_CHOOSE = """{% extends "base.html" %}
{% block title %}{{ t.title_choose }}{% endblock %}
{% block main %}
<h1>{{ t.title_choose }}</h1>
<p>{{ say("intro_topic" if topic else "intro_all") }}</p>
<fieldset>
<legend>{{ t.choose_legend }}</legend>
{% if topic %}
<form method="post">
<input type="hidden" name="scope" value="topic">
<button type="submit" id="unsubscribe-topic">{{ say("button_topic") }}</button>
</form>
{% endif %}
<form method="post">
<input type="hidden" name="scope" value="everything">
<button type="submit" id="unsubscribe-everything" class="{{ 'secondary' if topic else '' }}">
{{- t.button_all -}}
</button>
</form>
</fieldset>
<p class="hint">{{ say("hint_all") }}</p>
{% endblock %}
"""

_DONE = """{% extends "base.html" %}
{% block title %}{{ t.title_done }}{% endblock %}
{% block main %}
<h1 tabindex="-1">{{ t.title_done }}</h1>
<p role="status">{{ say("done_topic" if topic else "done_all") }}</p>
<p>{{ t.undo_intro }} <a href="{{ undo }}" id="undo">{{ t.undo_link }}</a></p>
<p class="hint">{{ say("undo_hint") }}</p>
{% endblock %}
"""

_UNDO = """{% extends "base.html" %}
{% block title %}{{ t.title_undo }}{% endblock %}
{% block main %}
<h1>{{ t.title_undo }}</h1>
<p>{{ say("undo_question_topic" if topic else "undo_question_all") }}</p>
<form method="post">
<button type="submit" id="resubscribe">{{ t.button_undo }}</button>
</form>
{% endblock %}
"""

_UNDONE = """{% extends "base.html" %}
{% block title %}{{ t.title_undone }}{% endblock %}
{% block main %}
<h1>{{ t.title_undone }}</h1>
<p role="status">{{ t.undone if removed else t.undone_nothing }}</p>
{% endblock %}
"""

_ERROR = """{% extends "base.html" %}
{% block title %}{{ t.title_error }}{% endblock %}
{% block main %}
<h1>{{ t.title_error }}</h1>
<p>{{ t[message] }}</p>
{% endblock %}
"""

_environment = Environment(
    loader=DictLoader(
        {
            "base.html": _BASE,
            "choose.html": _CHOOSE,
            "done.html": _DONE,
            "undo.html": _UNDO,
            "undone.html": _UNDONE,
            "error.html": _ERROR,
        }
    ),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def render(name: str, **fields: Any) -> str:
    """Page ``name`` (``choose``, ``done``, ``undo``, ``undone`` or ``error``) with ``fields``.

    ``say(key)`` in a template is the text ``key`` with the page's fields filled in.
    """

    def say(key: str) -> str:
        return TEXTS[key].format_map(_Fields(fields))

    return _environment.get_template(f"{name}.html").render(t=TEXTS, style=_STYLE, say=say, **fields)


class _Fields(dict[str, Any]):
    """The fields a text may name; an unknown name stays as written."""

    def __init__(self, fields: Mapping[str, Any]) -> None:
        super().__init__(fields)

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def masked(address: str) -> str:
    """``a•••@example.com``: enough for a visitor to recognise the address, not to read it whole."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}•••@{domain}" if domain else "•••"
