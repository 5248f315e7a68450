"""HTTP views: thin adapters over :class:`~webhook_receiver.receiver.WebhookReceiver`.

Status codes: 200 stored or duplicate; 400 unverifiable or not a JSON object (missing signature
headers and broken chunked framing included: one code for "not from Resend", as django-anymail does);
408 body not received in time; 413 too large; 415 not JSON; 405 wrong method; 503 database down
(Resend retries). Never 410: it disables the endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import UnsupportedMediaType

from webhook_receiver.body import read_body
from webhook_receiver.fast_path import RAISED
from webhook_receiver.receiver import WebhookReceiver
from webhook_receiver.storage import database_ok

EXTENSION = "pilot_webhooks"
#: The environ key where a webhook request's outcome is left for the metrics middleware.
OUTCOME = "pilot.outcome"
WEBHOOK_PATH = "/api/webhooks/resend"
#: The WSGI keys of the headers a signature check reads (both families; WSGI upper-cases names).
SIGNATURE_HEADERS = tuple(
    (f"{prefix}-{part}", f"HTTP_{prefix.upper()}_{part.upper()}")
    for prefix in ("svix", "webhook")
    for part in ("id", "timestamp", "signature")
)

blueprint = Blueprint("webhooks", __name__)


def _receiver() -> WebhookReceiver:
    receiver: WebhookReceiver = current_app.extensions[EXTENSION]
    return receiver


@blueprint.post(WEBHOOK_PATH)
def resend_webhook() -> tuple[Response, int]:
    """Verify, store and enqueue one Resend delivery (the fast path answers most of them first)."""
    if (error := request.environ.pop(RAISED, None)) is not None:
        raise error
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("webhook body must be application/json")
    body = read_body(request.stream, current_app.config["MAX_CONTENT_LENGTH"])
    receipt = _receiver().receive(body, signature_headers(request.environ))
    request.environ[OUTCOME] = receipt.outcome
    return Response(receipt.answer(), status=200, mimetype="application/json"), 200


def signature_headers(environ: Mapping[str, object]) -> dict[str, str]:
    """The signature headers of a request, read straight from the WSGI environ (building Werkzeug's
    header view and lower-casing every header cost more than the HMAC)."""
    return {name: value for name, key in SIGNATURE_HEADERS if isinstance(value := environ.get(key), str)}


@blueprint.get("/healthz")
def healthz() -> tuple[Response, int]:
    """200 when the database and the broker answer, else 503 naming what does not."""
    receiver = _receiver()
    checks = {
        "database": "ok" if database_ok(receiver.engine) else "unavailable",
        "broker": "ok" if receiver.dispatcher.ping() else "unavailable",
    }
    healthy = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if healthy else "unavailable", **checks), 200 if healthy else 503
