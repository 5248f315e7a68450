"""The HTTP surface of Resend: send, batch send, key check.

With :mod:`shared.resend_http`, the one module that knows ``httpx``: transport failures become
``ResendTransportError``; every non-2xx answer goes through ``resend_errors.error_for_answer``. The
API key is given per request (one pooled connection serves every connector of a process) and kept in
a ``SecretStr``: it appears in no exception, log line or repr.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from importlib import metadata
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr, ValidationError

from shared.errors import (
    ConfigError,
    PayloadInvalid,
    ResendAuthError,
    ResendError,
    ResendServerError,
    ResendTransportError,
)
from shared.resend_errors import RateLimitInfo, error_for_answer, parse_retry_after, rate_limit_headers
from shared.resend_http import ResendHTTP
from shared.resend_schemas import (
    MAX_BATCH_SIZE,
    BatchResponse,
    CheckedRequest,
    SendEmailRequest,
    SendEmailResponse,
    parse_send_request,
)
from shared.settings import Settings

__all__ = [
    "USER_AGENT",
    "BatchItemResult",
    "BatchSendResult",
    "KeyCheck",
    "RateLimitInfo",
    "ResendClient",
    "SendResult",
    "encode_body",
    "make_http_client",
    "parse_retry_after",
    "process_http_client",
]

logger = logging.getLogger(__name__)

#: Seconds to open a connection (and to wait for a pooled one).
CONNECT_TIMEOUT = 5.0
#: Seconds to wait for an answer; Resend answers a send in well under a second.
READ_TIMEOUT = 30.0
#: Resend keeps idempotency keys of 1-256 characters (400 invalid_idempotency_key otherwise).
MAX_IDEMPOTENCY_KEY_LENGTH = 256
_HEADER_SAFE = re.compile(r"^[\x21-\x7e]+$")
_M = TypeVar("_M", SendEmailResponse, BatchResponse)


def _package_version() -> str:
    try:
        return metadata.version("marketing-pilot-connectors")
    except metadata.PackageNotFoundError:
        return "0"


#: Resend's edge (Cloudflare) refuses requests without a User-Agent with 403 "error 1010".
USER_AGENT = f"marketing-pilot-connectors/{_package_version()}"


class KeyCheck(StrEnum):
    """What ``GET /domains`` says about an API key that can send."""

    FULL_ACCESS = "full_access"
    SENDING_ONLY = "sending_only"


@dataclass(frozen=True)
class SendResult:
    """A sent email: Resend's id (the ``email_id`` of every webhook event) and the rate-limit state."""

    email_id: str
    rate_limit: RateLimitInfo


@dataclass(frozen=True)
class BatchItemResult:
    """The outcome of request item ``index``: an ``email_id`` or Resend's ``error`` message."""

    index: int
    email_id: str | None
    error: str | None


@dataclass(frozen=True)
class BatchSendResult:
    """One item per request item, in request order."""

    items: list[BatchItemResult]
    rate_limit: RateLimitInfo


def make_http_client(settings: Settings) -> ResendHTTP:
    """A pooled connection to ``settings.resend_base_url`` with explicit timeouts and our User-Agent."""
    return ResendHTTP(
        settings.resend_base_url,
        timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT, pool=CONNECT_TIMEOUT),
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
    )


_process_clients: dict[tuple[int, str], ResendHTTP] = {}
_process_clients_lock = threading.Lock()


def process_http_client(settings: Settings) -> ResendHTTP:
    """The one pooled client of this process for ``settings.resend_base_url``.

    Keyed by pid as well: a client inherited through ``fork`` shares sockets with its parent.
    """
    key = (os.getpid(), settings.resend_base_url)
    with _process_clients_lock:
        client = _process_clients.get(key)
        if client is None or client.is_closed:
            client = _process_clients[key] = make_http_client(settings)
        return client


def encode_body(body: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, compact, UTF-8.

    Sorting makes a retry byte-identical even when the body was stored in JSONB (which reorders keys).
    """
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


class ResendClient:
    """Resend's send, batch and key-check endpoints, with errors mapped to ``shared.errors``."""

    def __init__(
        self,
        *,
        http: ResendHTTP,
        api_key: SecretStr | str,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        if not key:
            raise ConfigError("the Resend API key is empty (connector credentials or RESEND_API_KEY)")
        if not _HEADER_SAFE.fullmatch(key):
            # h11 would put the whole header value in its error message: refuse it here instead.
            raise ConfigError("the Resend API key contains characters not allowed in an HTTP header")
        self._http = http
        self._api_key = SecretStr(key)
        self._clock = clock or (lambda: datetime.now(UTC))

    def __repr__(self) -> str:
        return f"ResendClient(base_url={str(self._http.base_url).rstrip('/')!r}, api_key='**********')"

    def send_email(
        self, request: SendEmailRequest | Mapping[str, Any], *, idempotency_key: str
    ) -> SendResult:
        """``POST /emails``. A mapping is validated, then sent exactly as given."""
        body = _wire_body(request, where="")
        response = self._request("POST", "/emails", body=body, headers=_idempotency(idempotency_key))
        answer = _parse_success(response, SendEmailResponse)
        return SendResult(email_id=answer.id, rate_limit=RateLimitInfo.from_headers(response.headers))

    def send_batch(
        self, requests: Sequence[SendEmailRequest | Mapping[str, Any]], *, idempotency_key: str
    ) -> BatchSendResult:
        """``POST /emails/batch``, permissive: one result per item; refused items carry Resend's message."""
        if not requests:
            raise PayloadInvalid("requests: a batch needs at least one email")
        if len(requests) > MAX_BATCH_SIZE:
            raise PayloadInvalid(
                f"requests: {len(requests)} emails; Resend takes at most {MAX_BATCH_SIZE} per batch"
            )
        bodies = [_wire_body(item, where=f"requests[{index}].") for index, item in enumerate(requests)]
        for index, body in enumerate(bodies):
            if body.get("attachments"):
                raise PayloadInvalid(f"requests[{index}].attachments: not allowed in a batch send")
        headers = {**_idempotency(idempotency_key), "x-batch-validation": "permissive"}
        response = self._request("POST", "/emails/batch", body=bodies, headers=headers)
        answer = _parse_success(response, BatchResponse)
        items = _batch_items(answer, len(bodies), response)
        return BatchSendResult(items=items, rate_limit=RateLimitInfo.from_headers(response.headers))

    def check_key(self) -> KeyCheck:
        """``GET /domains``: 200 is a full-access key, 401 ``restricted_api_key`` a sending-only key."""
        try:
            self._request("GET", "/domains")
        except ResendAuthError as exc:
            if exc.status_code == 401 and exc.error_name == "restricted_api_key":
                return KeyCheck.SENDING_ONLY
            raise
        return KeyCheck.FULL_ACCESS

    def _request(
        self, method: str, path: str, *, body: Any = None, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """One exchange; any non-2xx answer or transport failure raises a ``ResendError``."""
        all_headers = dict(headers or {})
        all_headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        content = None
        if body is not None:
            content = encode_body(body)
            all_headers["Content-Type"] = "application/json"
        try:
            response = self._http.request(method, path, content=content, headers=all_headers)
        except httpx.TimeoutException as exc:
            raise ResendTransportError(f"{method} {path}: timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise ResendTransportError(f"{method} {path}: {type(exc).__name__}") from exc
        logger.debug("resend %s %s -> %s", method, path, response.status_code)
        if not response.is_success:
            error = error_for_answer(response.status_code, response.headers, response.text, now=self._clock())
            raise self._scrub(error)
        return response

    def _scrub(self, error: ResendError) -> ResendError:
        # Defence in depth: should Resend ever echo the key back, it must not reach our logs.
        secret = self._api_key.get_secret_value()
        if secret in error.message:
            error.message = error.message.replace(secret, "[api key]")
            error.args = (error.message,)
        return error


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


def _parse_success(response: httpx.Response, model: type[_M]) -> _M:
    parsed = _json_or_none(response)
    try:
        return model.model_validate(parsed)
    except ValidationError:
        raise _unreadable(response) from None


def _unreadable(response: httpx.Response) -> ResendServerError:
    # A success we cannot read: the email may exist. Retrying with the same key replays the answer.
    return ResendServerError(
        f"HTTP {response.status_code} with an unreadable body",
        status_code=response.status_code,
        rate_limit=rate_limit_headers(response.headers),
    )


def _batch_items(answer: BatchResponse, count: int, response: httpx.Response) -> list[BatchItemResult]:
    """Map ``data`` back to request indices by skipping the indices listed in ``errors``.

    (Inferred from the docs: permissive ``data`` holds only the created emails, in request order.)
    """
    errors = {error.index: error.message or "refused by Resend" for error in answer.errors}
    if any(index >= count for index in errors) or len(answer.data) != count - len(errors):
        raise ResendServerError(
            f"batch answer does not match the request: {count} items, "
            f"{len(answer.data)} ids, {len(errors)} errors",
            status_code=response.status_code,
        )
    ids: Iterator[str] = (created.id for created in answer.data)
    return [
        BatchItemResult(index, None, errors[index])
        if index in errors
        else BatchItemResult(index, next(ids), None)
        for index in range(count)
    ]


def _wire_body(request: SendEmailRequest | Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """The body to send: a model's ``to_wire()``, or a validated mapping exactly as stored."""
    if isinstance(request, SendEmailRequest):
        return request.to_wire()
    if isinstance(request, CheckedRequest):
        return request
    parse_send_request(request, where=where)
    return dict(request)


def _idempotency(key: str) -> dict[str, str]:
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise PayloadInvalid(f"idempotency_key: must be 1-{MAX_IDEMPOTENCY_KEY_LENGTH} characters")
    if not _HEADER_SAFE.fullmatch(key):
        raise PayloadInvalid("idempotency_key: must be printable ASCII without spaces")
    return {"Idempotency-Key": key}
