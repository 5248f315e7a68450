"""webhook_receiver.fast_path: plain deliveries answered in front of Flask, everything else handed on."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

import pytest
from werkzeug.exceptions import ClientDisconnected
from werkzeug.test import EnvironBuilder

from shared.errors import WebhookVerificationError
from webhook_receiver.fast_path import RAISED, fast_path
from webhook_receiver.receiver import Receipt

PATH = "/api/webhooks/resend"
LIMIT = 1024
BODY = b'{"type": "email.sent"}'


class StubReceiver:
    """Answers every delivery with ``receipt``, or raises ``error``; remembers the bodies."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.bodies: list[bytes] = []

    def receive(self, body: bytes, headers: dict[str, str]) -> Receipt:
        self.bodies.append(body)
        if self.error is not None:
            raise self.error
        return Receipt("msg_1", uuid.uuid4(), "email.sent", enqueued=True)


class Inner:
    """The Flask app's place: remembers each environ it is given and answers 299."""

    def __init__(self) -> None:
        self.environs: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.environs.append(environ)
        start_response("299 Inner", [])
        return [b""]


def call(app: Any, **builder: Any) -> tuple[str, dict[str, str], bytes, dict[str, Any]]:
    environ = EnvironBuilder(**{"path": PATH, "method": "POST", "data": BODY, **builder}).get_environ()
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer.update(status=status, headers=dict(headers))

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body, environ


def wrapped(receiver: StubReceiver, inner: Inner) -> Any:
    return fast_path(
        inner,
        path=PATH,
        receiver=lambda: receiver,
        limit=LIMIT,
        outcome_key="outcome",
        headers_of=lambda _: {},
    )


def test_fast_path_answers_a_plain_delivery_itself() -> None:
    receiver, inner = StubReceiver(), Inner()
    status, headers, body, environ = call(wrapped(receiver, inner), content_type="application/json")
    assert status == "200 OK" and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": "stored", "svix_id": "msg_1"}
    assert int(headers["Content-Length"]) == len(body)
    assert environ["outcome"] == "stored" and receiver.bodies == [BODY] and inner.environs == []


@pytest.mark.parametrize(
    "builder",
    [
        {"method": "PUT", "content_type": "application/json"},
        {"path": "/elsewhere", "content_type": "application/json"},
        {"content_type": "text/plain"},
        {"content_type": "application/json", "data": b"x" * (LIMIT + 1)},
        {"content_type": "application/json", "environ_overrides": {"CONTENT_LENGTH": ""}},  # chunked
    ],
    ids=["method", "path", "content-type", "too-long", "no-length"],
)
def test_fast_path_hands_other_requests_to_the_app_unread(builder: dict[str, Any]) -> None:
    receiver, inner = StubReceiver(), Inner()
    status, _, _, environ = call(wrapped(receiver, inner), **builder)
    assert status == "299 Inner" and inner.environs == [environ] and receiver.bodies == []
    assert RAISED not in environ


def test_fast_path_failure_goes_to_the_app_to_be_raised_again_with_the_body() -> None:
    error = WebhookVerificationError("no matching signature")
    receiver, inner = StubReceiver(error), Inner()
    status, _, _, environ = call(wrapped(receiver, inner), content_type="application/json")
    assert status == "299 Inner" and environ[RAISED] is error
    assert environ["wsgi.input"].read() == BODY and receiver.bodies == [BODY]


def test_fast_path_body_shorter_than_its_length_is_raised_again_as_a_disconnect() -> None:
    receiver, inner = StubReceiver(), Inner()
    overrides = {"CONTENT_LENGTH": str(len(BODY) + 10)}
    status, _, _, environ = call(
        wrapped(receiver, inner), content_type="application/json", environ_overrides=overrides
    )
    assert status == "299 Inner" and isinstance(environ[RAISED], ClientDisconnected)
    assert receiver.bodies == []
