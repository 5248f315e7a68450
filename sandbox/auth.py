"""Bearer API keys answered as Resend does."""

from __future__ import annotations

from sandbox.api_errors import ApiError
from sandbox.config import SENDING_ONLY_PREFIX, SandboxConfig


def authenticate(authorization: str | None, config: SandboxConfig, *, sending: bool) -> str:
    """The API key of the request, or :class:`ApiError` as Resend answers.

    ``sending`` is True on the send endpoints, the only ones a sending-only key may use. The key is never
    put into an error message.
    """
    scheme, _, key = (authorization or "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise ApiError(
            401,
            "missing_api_key",
            "Missing API key in the authorization header. Include the following header in the request: "
            "Authorization: Bearer YOUR_API_KEY",
        )
    if not _known(key, config):
        raise ApiError(403, "invalid_api_key", "API key is invalid")
    if not sending and key.startswith(SENDING_ONLY_PREFIX):
        raise ApiError(401, "restricted_api_key", "This API key is restricted to only send emails")
    return key


def _known(key: str, config: SandboxConfig) -> bool:
    if config.api_keys:
        return key in config.api_keys
    return key.startswith("re_") and len(key) > len("re_")
