"""The unsubscribe endpoints: the RFC 8058 one-click POST, the page behind the link, the undo link.

``views`` holds the routes, ``service`` what they do (tokens, rate limits, the database), ``pages``
the HTML (Jinja, no external assets) and ``texts`` every string a visitor reads, in one place.
"""
