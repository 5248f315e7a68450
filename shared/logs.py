"""Logging set-up: one format switch (human or JSON), a filter that redacts secrets and one that
masks email addresses.

The first filter removes the configured secret values and anything shaped like a Resend key, a
webhook secret or a bearer token from every record, whoever logged it (our code, httpx, Celery).
The second masks every email address in records above DEBUG (``a***@example.com``): recipients are
personal data, and Celery's own INFO lines carry task results. At DEBUG they are shown whole.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime

from shared.addresses import mask_addresses
from shared.settings import Settings

REDACTED = "[redacted]"
#: Shapes of secrets that may reach a log line through third-party code.
SECRET_PATTERNS = re.compile(
    r"\bre_[A-Za-z0-9_]{6,}|\bwhsec_[A-Za-z0-9+/=]{8,}|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{6,}"
)


class RedactingFilter(logging.Filter):
    """Replace secret values and secret-shaped strings in a record's message and arguments."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return SECRET_PATTERNS.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class PersonalDataFilter(logging.Filter):
    """Mask email addresses (:func:`~shared.addresses.mask_addresses`) in records above DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG:
            return True
        record.msg = mask_addresses(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = mask_addresses(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def secret_values(settings: Settings) -> list[str]:
    """Every secret value the settings hold, for the redacting filter."""
    values = [
        s.get_secret_value() for s in (*settings.resend_webhook_secret, *settings.pilot_encryption_keys)
    ]
    values += [s.removeprefix("whsec_") for s in values if s.startswith("whsec_")]
    if settings.resend_api_key is not None:
        values.append(settings.resend_api_key.get_secret_value())
    return values


def configure_logging(settings: Settings) -> None:
    """Install the root handler with the chosen format and the redacting filter."""
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter(secret_values(settings)))
    handler.addFilter(PersonalDataFilter())
    if settings.pilot_log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.pilot_log_level)


def configure_cli_logging() -> None:
    """The ``pilot`` command's logging: warnings and errors only, on stderr, secret-shaped strings
    redacted and addresses masked (it reads no settings, so it works before they are valid)."""
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    handler.addFilter(PersonalDataFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
