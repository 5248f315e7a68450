"""The unsubscribe routes: the RFC 8058 one-click POST, the page (GET never unsubscribes) whose
buttons post back, and the undo link (``/resubscribe/<token>``).

A token that does not open is a 404 plain page that never says why; a body that is neither form is
a 400, over :data:`MAX_FORM_BYTES` a 413, another content type a 415, another method a 405; a client
over its limits gets 429. Nothing is stored for any of them. Details: README, "One-click unsubscribe".
"""

from __future__ import annotations

import io
import logging

from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import OperationalError
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest, UnsupportedMediaType
from werkzeug.formparser import FormDataParser

from shared.errors import TokenInvalid
from shared.unsubscribe.actions import UnsubscribeSource
from shared.unsubscribe.links import RESUBSCRIBE_PATH, UNSUBSCRIBE_PATH
from shared.unsubscribe.tokens import MAX_TOKEN_CHARS
from shared.unsubscribe.topics import Scope
from webhook_receiver.body import read_body
from webhook_receiver.unsubscribe.pages import masked, render
from webhook_receiver.unsubscribe.service import UNDO_VALID_FOR, RateLimited, UnsubscribeService
from webhook_receiver.unsubscribe.texts import TEXTS

logger = logging.getLogger(__name__)

EXTENSION = "pilot_unsubscribe"
#: The one-click body is 26 bytes and the page's forms a few more; nothing legitimate comes near this.
MAX_FORM_BYTES = 4096
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
#: Paths answered with plain pages (errors included), not the webhook endpoint's JSON.
PAGE_PREFIXES = (UNSUBSCRIBE_PATH, RESUBSCRIBE_PATH)
#: The pages load nothing: their style is inline, their forms post to this site only.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"

blueprint = Blueprint("unsubscribe", __name__)


def _service() -> UnsubscribeService:
    service: UnsubscribeService = current_app.extensions[EXTENSION]
    return service


def page(name: str, status: int = 200, **fields: object) -> Response:
    """An HTML page, never cached, never framed."""
    response = Response(render(name, **fields), status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def error_page(status: int, message: str) -> Response:
    """A plain error page (``message`` is a key of the texts)."""
    return page("error", status, message=message)


@blueprint.before_request
def _limit() -> Response | None:
    try:
        _service().admit(request.remote_addr or "unknown")
    except RateLimited:
        response = error_page(429, "error_rate_limited")
        response.headers["Retry-After"] = "60"
        return response
    return None


@blueprint.errorhandler(TokenInvalid)
def _invalid(exc: TokenInvalid) -> Response:
    _service().failed(request.remote_addr or "unknown")
    return error_page(404, "error_not_found")


@blueprint.errorhandler(OperationalError)
def _unavailable(exc: OperationalError) -> Response:
    logger.error("unsubscribe not recorded, answering 503: database unavailable")
    response = error_page(503, "error_unavailable")
    response.headers["Retry-After"] = "30"
    return response


@blueprint.get(UNSUBSCRIBE_PATH + "<token>")
def show(token: str) -> Response:
    """The page of an email's link: who, what, and two buttons. Changes nothing."""
    service = _service()
    opened = service.open_unsubscribe(_checked(token))
    who = service.recipient(opened.organization_id, opened.email, opened.topic)
    return page(
        "choose",
        topic=opened.topic,
        organization=who.organization,
        address=masked(opened.email),
    )


@blueprint.post(UNSUBSCRIBE_PATH + "<token>")
def unsubscribe(token: str) -> Response:
    """The one-click POST (RFC 8058), or a button of the page."""
    service = _service()
    opened = service.open_unsubscribe(_checked(token))
    form = _form()
    if form.get("List-Unsubscribe") == "One-Click":
        service.unsubscribe(opened, Scope.TOPIC, UnsubscribeSource.ONE_CLICK)
        return Response(TEXTS["one_click_done"], status=200, mimetype="text/plain")
    try:
        scope = Scope(form.get("scope", ""))
    except ValueError:
        raise BadRequest("the form must hold List-Unsubscribe=One-Click or scope=topic|everything") from None
    who = service.recipient(opened.organization_id, opened.email, opened.topic)
    done = service.unsubscribe(opened, scope, UnsubscribeSource.PAGE)
    return page(
        "done",
        topic=done.topic or None,
        organization=who.organization,
        undo=service.undo_url(opened, done.topic),
        days=UNDO_VALID_FOR.days,
    )


@blueprint.get(RESUBSCRIBE_PATH + "<token>")
def ask_undo(token: str) -> Response:
    """The undo link: asks before it changes anything."""
    service = _service()
    opened = service.open_resubscribe(_checked(token))
    who = service.recipient(opened.organization_id, opened.email, opened.topic or None)
    return page(
        "undo",
        topic=opened.topic or None,
        organization=who.organization,
        address=masked(opened.email),
    )


@blueprint.post(RESUBSCRIBE_PATH + "<token>")
def undo(token: str) -> Response:
    """Remove the entry the undo link names."""
    service = _service()
    opened = service.open_resubscribe(_checked(token))
    _form()
    return page("undone", removed=service.resubscribe(opened))


def _checked(token: str) -> str:
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenInvalid()
    return token


def _form() -> MultiDict[str, str]:
    """The request's form fields (urlencoded or multipart, at most :data:`MAX_FORM_BYTES`)."""
    if request.mimetype not in FORM_TYPES:
        raise UnsupportedMediaType("the body must be a form (urlencoded or multipart)")
    body = read_body(request.stream, MAX_FORM_BYTES)
    parser = FormDataParser(max_content_length=MAX_FORM_BYTES, max_form_parts=20, silent=False)
    try:
        _, form, _ = parser.parse(io.BytesIO(body), request.mimetype, len(body), request.mimetype_params)
    except ValueError:
        raise BadRequest("the form could not be read") from None
    return form
