"""Resend's error answers: ``{"statusCode", "message", "name"}``."""

from __future__ import annotations

from collections.abc import Mapping


class ApiError(Exception):
    """Raised inside the sandbox to answer with Resend's error body; ``headers`` are added to it."""

    def __init__(self, status: int, name: str, message: str, *, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.name = name
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, object]:
        """The JSON body Resend sends."""
        return {"statusCode": self.status, "message": self.message, "name": self.name}


class ConnectionDropped(Exception):
    """Raised when the sandbox accepted a send but must not answer (fault injection) and has no socket."""


def validation_error(message: str) -> ApiError:
    """400 ``validation_error``: a field is present but wrong (Resend names the field in the message)."""
    return ApiError(400, "validation_error", message)


def invalid_parameter(message: str) -> ApiError:
    """422 ``invalid_parameter``: a path or query parameter is malformed (a non-UUID email id)."""
    return ApiError(422, "invalid_parameter", message)


def missing_field(name: str) -> ApiError:
    """422 ``missing_required_field``."""
    return ApiError(422, "missing_required_field", f"Missing `{name}` field.")
