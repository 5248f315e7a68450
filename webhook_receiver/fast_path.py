"""A plain-WSGI path for the webhook requests that succeed, in front of the Flask app.

A well-formed delivery (``POST``, JSON, a ``Content-Length`` within the limit) is verified, stored and
answered here, without Flask's per-request cost. Anything else goes to Flask untouched, and an error
raised here is raised again in the Flask view, so every refusal comes from ``app.py``'s handlers.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from werkzeug.wsgi import LimitedStream

from webhook_receiver.body import read_body
from webhook_receiver.receiver import WebhookReceiver

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: Where a failure of the fast path waits for the Flask view to raise it again.
RAISED = "pilot.fast_path_error"


def fast_path(
    inner: WSGIApplication,
    *,
    path: str,
    receiver: Callable[[], WebhookReceiver],
    limit: int,
    outcome_key: str,
    headers_of: Callable[[WSGIEnvironment], dict[str, str]],
) -> WSGIApplication:
    """``inner`` behind a path answering the successful deliveries to ``path`` itself."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not _plain_delivery(environ, path, limit):
            return inner(environ, start_response)
        body = b""
        try:
            # As Flask reads it: a body shorter than its Content-Length is a ClientDisconnected (400).
            stream = LimitedStream(environ["wsgi.input"], int(environ["CONTENT_LENGTH"]))
            body = read_body(stream, limit)
            receipt = receiver().receive(body, headers_of(environ))
        except Exception as exc:
            environ[RAISED] = exc
            environ["wsgi.input"] = io.BytesIO(body)
            return inner(environ, start_response)
        environ[outcome_key] = receipt.outcome
        answer = receipt.answer()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))])
        return [answer]

    return app


def _plain_delivery(environ: WSGIEnvironment, path: str, limit: int) -> bool:
    """A POST of JSON to ``path`` whose declared length is within ``limit`` (the common case)."""
    if environ.get("PATH_INFO") != path or environ.get("REQUEST_METHOD") != "POST":
        return False
    if environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() != "application/json":
        return False
    length = environ.get("CONTENT_LENGTH", "")
    return length.isascii() and length.isdigit() and int(length) <= limit
