"""Resend's unsuccessful answers, read into our exceptions: pure functions over status, headers, body.

``shared.resend_client`` calls :func:`error_for_answer` for every non-2xx answer. The error name
decides where the status alone cannot (https://resend.com/docs/api-reference/errors: two revisions
disagree on the invalid-key answer). Answer by answer: docs/architecture.md, "Errors and what the send
path does".
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from pydantic import ValidationError

from shared.errors import (
    ResendAuthError,
    ResendError,
    ResendIdempotencyInFlight,
    ResendIdempotencyMismatch,
    ResendQuotaExceeded,
    ResendRateLimited,
    ResendRejected,
    ResendServerError,
)
from shared.resend_schemas import ErrorBody

#: Headers copied onto every exception (IETF ratelimit draft 06 as Resend sends it, quota headers).
RATE_LIMIT_HEADERS = (
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit-policy",
    "retry-after",
    "x-resend-daily-quota",
    "x-resend-monthly-quota",
)
#: Error names that mean "this key cannot be used", whatever the status (docs and the Node SDK union).
KEY_ERROR_NAMES = frozenset(
    {
        "missing_api_key",
        "invalid_api_key",
        "restricted_api_key",
        "suspended_api_key",
        "invalid_access",
        "invalid_permission",
    }
)
QUOTA_ERROR_NAMES = frozenset({"daily_quota_exceeded", "monthly_quota_exceeded"})
#: 409 names whose remedy is the same request later, with the same idempotency key.
RETRY_LATER_409_NAMES = frozenset({"concurrent_idempotent_requests", "resource_locked"})


@dataclass(frozen=True)
class RateLimitInfo:
    """Resend's ``ratelimit-*`` headers: requests per window, left, seconds until the window resets."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitInfo:
        """Tolerant parse (``headers`` keys lower-case, or an ``httpx.Headers``): bad values become None."""
        return cls(
            limit=_int_or_none(headers.get("ratelimit-limit")),
            remaining=_int_or_none(headers.get("ratelimit-remaining")),
            reset=seconds_or_none(headers.get("ratelimit-reset")),
        )


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), never negative."""
    if value is None or not value.strip():
        return None
    seconds = seconds_or_none(value)
    if seconds is not None:
        return seconds
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # RFC 9110 dates are GMT
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The rate-limit and quota headers present in ``headers``, by lower-case name."""
    lowered = {key.lower(): value for key, value in headers.items()}
    return {key: lowered[key] for key in RATE_LIMIT_HEADERS if key in lowered}


def error_for_answer(
    status: int, headers: Mapping[str, str], text: str, *, now: datetime | None = None
) -> ResendError:
    """The exception for an unsuccessful answer: class by taxonomy, Resend's name and message attached."""
    parsed = _json_or_none(text)
    body = _error_body(parsed)
    name = body.name if body else None
    message = body.message if body and body.message else _describe_unexpected(status, headers, text, parsed)
    rate_headers = rate_limit_headers(headers)
    cls = error_class(status, name, message, is_json=body is not None)
    retry_after = parse_retry_after(rate_headers.get("retry-after"), now=now)
    if cls is ResendRateLimited and retry_after is None:
        retry_after = RateLimitInfo.from_headers(rate_headers).reset
    if cls is ResendQuotaExceeded and retry_after is None and name == "daily_quota_exceeded":
        retry_after = seconds_to_utc_midnight(now or datetime.now(UTC))
    return cls(message, status_code=status, error_name=name, retry_after=retry_after, rate_limit=rate_headers)


def error_class(status: int, name: str | None, message: str, *, is_json: bool) -> type[ResendError]:
    """The exception class for ``status`` and Resend's error ``name``."""
    if status >= 500:
        return ResendServerError
    if status == 429:
        # An unnamed 429 is treated as the request-rate limit: waiting is the safe reading.
        return ResendQuotaExceeded if name in QUOTA_ERROR_NAMES else ResendRateLimited
    if status == 409:
        if name == "invalid_idempotent_request":
            return ResendIdempotencyMismatch
        return ResendIdempotencyInFlight if name in RETRY_LATER_409_NAMES else ResendRejected
    if _is_key_error(status, name, message, is_json=is_json):
        return ResendAuthError
    return ResendRejected


def _is_key_error(status: int, name: str | None, message: str, *, is_json: bool) -> bool:
    """401 always; a key error name; the newer docs' ``validation_error`` "API key is invalid".

    A non-JSON 403 comes from the edge (Cloudflare 1010): every request would fail the same way.
    A 403 ``validation_error`` about the sender domain is a per-send refusal, not a key error.
    """
    if status == 401 or name in KEY_ERROR_NAMES:
        return True
    if status in {400, 403} and name == "validation_error" and "api key" in message.lower():
        return True
    return status == 403 and not is_json


def _error_body(parsed: Any) -> ErrorBody | None:
    if not isinstance(parsed, dict):
        return None
    try:
        return ErrorBody.model_validate(parsed)
    except ValidationError:
        return None


def _describe_unexpected(status: int, headers: Mapping[str, str], text: str, parsed: Any) -> str:
    """A message for an answer without Resend's error body; the body itself is never copied."""
    lowered = {key.lower(): value for key, value in headers.items()}
    content_type = lowered.get("content-type", "no content type")
    hint = " (Cloudflare error 1010: User-Agent missing or blocked)" if "1010" in text[:4000] else ""
    kind = "JSON without a message" if parsed is not None else f"a non-JSON body ({content_type})"
    return f"HTTP {status} with {kind}{hint}"


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _int_or_none(value: str | None) -> int | None:
    seconds = seconds_or_none(value)
    return None if seconds is None else int(seconds)


def seconds_or_none(value: str | None) -> float | None:
    """A non-negative finite number from a header value, else None."""
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return max(0.0, number) if math.isfinite(number) else None


def seconds_to_utc_midnight(now: datetime) -> float:
    """Seconds until 00:00 UTC, when Resend's free-plan daily quota resets."""
    current = now.astimezone(UTC)
    midnight = (current + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - current).total_seconds()
