"""A fake Resend at the HTTP boundary: an ``httpx.MockTransport`` handler with scripted answers.

Answers are queued with :meth:`FakeResend.reply` (or :meth:`FakeResend.fail` for a transport error);
with nothing queued, ``POST /emails`` and ``POST /emails/batch`` succeed with fresh ids and
``GET /domains`` answers 200. Every request is recorded.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from typing import Any

import httpx

from shared.resend_client import USER_AGENT
from shared.resend_http import ResendHTTP

BASE_URL = "https://api.resend.test"
#: What a healthy answer from Resend carries (values seen in recorded responses).
RATE_HEADERS = {"ratelimit-limit": "2", "ratelimit-remaining": "1", "ratelimit-reset": "1"}


class FakeResend:
    """Records requests; answers from a queue, else like a healthy Resend."""

    def __init__(self, *, id_prefix: str = "email-") -> None:
        """``id_prefix`` starts every email id it answers (unique ones for a database many tests share)."""
        self.requests: list[httpx.Request] = []
        self._answers: deque[httpx.Response | Exception] = deque()
        self._ids = (f"{id_prefix}{n:04d}" for n in itertools.count(1))

    def reply(
        self, status: int, body: Any = None, *, headers: dict[str, str] | None = None, text: str | None = None
    ) -> None:
        """Queue one answer: JSON ``body``, or raw ``text``."""
        if text is not None:
            self._answers.append(httpx.Response(status, text=text, headers=headers))
        else:
            self._answers.append(httpx.Response(status, json=body, headers=headers))

    def fail(self, error: Exception) -> None:
        """Queue a transport error (``httpx.ConnectError``, ``httpx.ReadTimeout``...)."""
        self._answers.append(error)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self._answers:
            answer = self._answers.popleft()
            if isinstance(answer, Exception):
                raise answer
            return answer
        return self._default(request)

    def client(self) -> ResendHTTP:
        """A connection shaped like ``make_http_client``'s, talking to this fake."""
        return ResendHTTP(
            BASE_URL,
            timeout=httpx.Timeout(5.0),
            headers={"User-Agent": USER_AGENT},
            transport=httpx.MockTransport(self.handler),
        )

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def last_json(self) -> Any:
        return json.loads(self.last.content)

    def _default(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/emails":
            return httpx.Response(200, json={"id": next(self._ids)}, headers=RATE_HEADERS)
        if request.method == "POST" and path == "/emails/batch":
            items = json.loads(request.content)
            data = [{"id": next(self._ids)} for _ in items]
            return httpx.Response(200, json={"data": data}, headers=RATE_HEADERS)
        if request.method == "GET" and path == "/domains":
            return httpx.Response(200, json={"object": "list", "has_more": False, "data": []})
        return httpx.Response(404, json={"statusCode": 404, "name": "not_found", "message": "Not found"})


def error_body(status: int, name: str, message: str) -> dict[str, Any]:
    """Resend's error body as recorded in real answers."""
    return {"statusCode": status, "name": name, "message": message}
