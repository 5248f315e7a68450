"""The sandbox's Flask app: Resend's API surface plus `/_sandbox/*` inspection. Views are thin adapters."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from sandbox.api_errors import ApiError, ConnectionDropped, validation_error
from sandbox.config import SandboxConfig
from sandbox.payloads import postgres_time
from sandbox.service import Sandbox, SendResult

api = Blueprint("resend_api", __name__)
inspection = Blueprint("sandbox_inspection", __name__, url_prefix="/_sandbox")

#: The one domain `GET /domains` lists (the sandbox sends from anything, like a verified domain).
DOMAIN_ID = "4dd369bc-aa82-4ff3-97de-514ae3000ee0"


def create_app(config: SandboxConfig | None = None) -> Flask:
    """A sandbox app with fresh in-memory state; ``app.extensions["sandbox"]`` is its :class:`Sandbox`."""
    app = Flask(__name__)
    app.extensions["sandbox"] = Sandbox(config or SandboxConfig())
    app.register_blueprint(api)
    app.register_blueprint(inspection)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    return app


def sandbox() -> Sandbox:
    """The current app's sandbox state."""
    state: Sandbox = current_app.extensions["sandbox"]
    return state


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer; `json.dumps` directly, because it runs on every request."""
    return Response(json.dumps(body), status=status, headers=headers, mimetype="application/json")


@api.post("/emails")
def send_email() -> Response:
    key, headers = sandbox().guard(request.headers.get("Authorization"), sending=True)
    with _answering_with(headers):
        result = sandbox().send_email(key, request.headers.get("Idempotency-Key"), _json_body())
    return _send_answer(result, headers)


@api.post("/emails/batch")
def send_batch() -> Response:
    key, headers = sandbox().guard(request.headers.get("Authorization"), sending=True)
    mode = request.headers.get("x-batch-validation")
    with _answering_with(headers):
        result = sandbox().send_batch(key, request.headers.get("Idempotency-Key"), _json_body(), mode)
    return _send_answer(result, headers)


@api.post("/emails/<email_id>/cancel")
def cancel_email(email_id: str) -> Response:
    _, headers = sandbox().guard(request.headers.get("Authorization"), sending=False)
    with _answering_with(headers):
        body = sandbox().cancel(email_id)
    return json_response(body, headers=headers)


@api.patch("/emails/<email_id>")
def update_email(email_id: str) -> Response:
    _, headers = sandbox().guard(request.headers.get("Authorization"), sending=False)
    with _answering_with(headers):
        body = sandbox().reschedule(email_id, _json_body())
    return json_response(body, headers=headers)


@api.get("/emails/<email_id>")
def get_email(email_id: str) -> Response:
    _, headers = sandbox().guard(request.headers.get("Authorization"), sending=False)
    with _answering_with(headers):
        record = sandbox().find_email(email_id)
    body = {
        "object": "email",
        "id": record.id,
        "message_id": f"<{record.id}@resend.dev>",
        "to": record.to,
        "from": record.sender,
        "created_at": postgres_time(record.created_at),
        "subject": record.subject,
        "html": record.html,
        "text": record.text,
        "cc": record.cc,
        "bcc": record.bcc,
        "reply_to": record.reply_to,
        "last_event": record.last_event(sandbox().clock()),
        "scheduled_at": postgres_time(record.send_at) if record.send_at is not None else None,
        "tags": record.tags,
    }
    return json_response(body, headers=headers)


@api.get("/domains")
def list_domains() -> Response:
    _, headers = sandbox().guard(request.headers.get("Authorization"), sending=False)
    domain = {
        "id": DOMAIN_ID,
        "name": "sandbox.resend.dev",
        "status": "verified",
        "created_at": "2026-01-01 00:00:00.000000+00",
        "region": "us-east-1",
    }
    return json_response({"object": "list", "has_more": False, "data": [domain]}, headers=headers)


@inspection.get("/emails")
def list_emails() -> Response:
    return json_response({"object": "list", "data": sandbox().emails.listing()})


@inspection.get("/stats")
def stats() -> Response:
    state = sandbox()
    snapshot = state.stats.snapshot()
    snapshot["counts"]["webhooks_pending"] = state.webhooks.pending()
    snapshot["counts"]["emails"] = len(state.emails)
    return json_response(snapshot)


@inspection.post("/reset")
def reset() -> Response:
    sandbox().reset()
    return json_response({"reset": True})


@inspection.get("/config")
def show_config() -> Response:
    return json_response(sandbox().config.public_view())


@inspection.post("/config")
def change_config() -> Response:
    switches = _json_body()
    if not isinstance(switches, dict):
        raise validation_error("The body must be a JSON object of switches.")
    try:
        config = sandbox().reconfigure(switches)
    except (TypeError, ValueError) as exc:
        raise validation_error(str(exc)) from None
    return json_response(config.public_view())


@contextlib.contextmanager
def _answering_with(headers: dict[str, str]) -> Iterator[None]:
    """Errors raised inside carry the rate-limit headers too, as every Resend answer does."""
    try:
        yield
    except ApiError as error:
        error.headers = {**headers, **error.headers}
        raise


def _json_body() -> Any:
    try:
        return json.loads(request.get_data())
    except ValueError:
        raise validation_error("The request body is not valid JSON.") from None


def _send_answer(result: SendResult, headers: dict[str, str]) -> Response:
    if result.drop:
        sandbox().stats.add("dropped_connections")
        _drop_connection()
    return json_response(result.body, result.status, headers)


def _drop_connection() -> None:
    """Close the client's connection without an answer (the send is already recorded).

    Under gunicorn the socket is shut down, so writing the answer fails with EPIPE, which the gthread
    worker ignores; without a socket (Flask's test client) :class:`ConnectionDropped` is raised.
    """
    sock = request.environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket):
        raise ConnectionDropped("connection dropped after accepting the send")
    with contextlib.suppress(OSError):  # already gone
        sock.shutdown(socket.SHUT_RDWR)


def _api_error(error: ApiError) -> Response:
    return json_response(error.body(), error.status, error.headers)


def _http_error(error: HTTPException) -> Response:
    names = {404: "not_found", 405: "method_not_allowed", 413: "validation_error"}
    status = error.code or 500
    name = names.get(status, "application_error")
    messages = {404: "The requested endpoint does not exist.", 405: "Method not allowed"}
    message = messages.get(status, error.description or name)
    return json_response({"statusCode": status, "message": message, "name": name}, status)
