"""Log records are redacted whoever logs them, in both formats."""

from __future__ import annotations

import json
import logging

import pytest

from shared.logs import REDACTED, JsonFormatter, RedactingFilter


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("httpx", logging.INFO, __file__, 1, message, args, None)


@pytest.mark.parametrize(
    "line",
    [
        "Authorization: Bearer re_abcdef123456",
        "key re_live_0123456789abcdef",
        "secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "header bearer abc.def-ghi_jkl",
    ],
)
def test_secret_shapes_are_redacted(line: str) -> None:
    entry = record(line)
    RedactingFilter().filter(entry)

    assert REDACTED in entry.getMessage()
    assert line.split()[-1] not in entry.getMessage()


def test_configured_secret_values_are_redacted_from_arguments() -> None:
    entry = record("connecting with %s", "plain-secret-value")
    RedactingFilter(["plain-secret-value"]).filter(entry)

    assert entry.getMessage() == f"connecting with {REDACTED}"


def test_exception_text_is_redacted() -> None:
    try:
        raise RuntimeError("boom re_exception_key_123")
    except RuntimeError:
        import sys

        entry = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    RedactingFilter().filter(entry)

    assert entry.exc_text is not None and "re_exception_key_123" not in entry.exc_text


def test_json_format_is_one_object_per_line() -> None:
    entry = record("hello %s", "world")

    assert json.loads(JsonFormatter().format(entry))["message"] == "hello world"
