"""Every switch of the sandbox in one frozen dataclass; the fault switches can change at run time."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.webhook_signature import decode_secret

#: Resend's older documented per-team request rate (requests per second); 0 turns limiting off.
DEFAULT_RATE_LIMIT_PER_SECOND = 2.0
#: Resend keeps idempotency keys for 24 hours.
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
#: Keys with this prefix are "sending access" keys: only the send endpoints accept them.
SENDING_ONLY_PREFIX = "re_sendonly_"

_SHARES = (
    "open_rate",
    "click_rate",
    "soft_bounce_rate",
    "fail_rate",
    "error_rate",
    "drop_rate",
    "stall_rate",
)


@dataclass(frozen=True)
class SandboxConfig:
    """How the sandbox behaves. Shares are probabilities in [0, 1]; times are seconds."""

    host: str = "127.0.0.1"
    port: int = 8025
    #: Gunicorn gthread threads of the one worker process (state is in memory: one process only).
    threads: int = 8

    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    #: Multiplies Resend's retry schedule (5 s, 5 min, 30 min...): 0.001 makes 5 min last 0.3 s.
    webhook_time_scale: float = 1.0
    #: Real delay between successive events of one email (their `created_at` follow it).
    webhook_event_spacing: float = 0.001
    webhook_timeout: float = 15.0
    webhook_threads: int = 4
    #: Share of events delivered a second time (same svix-id) after a successful delivery.
    duplicate_webhooks: float = 0.0
    #: Deliver the events of each email in random order (their `created_at` keep the true order).
    shuffle_webhooks: bool = False

    #: Accepted API keys; empty means any key starting with ``re_``.
    api_keys: frozenset[str] = field(default=frozenset(), repr=False)
    rate_limit_per_second: float = DEFAULT_RATE_LIMIT_PER_SECOND
    #: Emails (recipients) per API key per UTC day; 0 means no quota (paid plans).
    daily_quota: int = 0

    open_rate: float = 0.0
    click_rate: float = 0.0
    soft_bounce_rate: float = 0.0
    #: Share of ordinary recipients that end with `email.failed`.
    fail_rate: float = 0.0

    #: Added latency per API request, seconds.
    latency: float = 0.0
    #: Share of API requests answered 500 before anything is accepted.
    error_rate: float = 0.0
    #: Share of sends accepted (emails recorded, webhooks scheduled) whose connection is then dropped.
    drop_rate: float = 0.0
    #: Share of sends that hang for ``stall_seconds`` before they are accepted (a slow server: the
    #: idempotency key is in flight meanwhile, so a client that gave up and retries gets a 409).
    stall_rate: float = 0.0
    stall_seconds: float = 30.0

    seed: int | None = None

    def __post_init__(self) -> None:
        for name in _SHARES:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if not 0.0 <= self.duplicate_webhooks <= 1.0:
            raise ValueError("duplicate_webhooks must be between 0 and 1")
        for name in (
            "rate_limit_per_second",
            "latency",
            "stall_seconds",
            "webhook_time_scale",
            "webhook_event_spacing",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.daily_quota < 0:
            raise ValueError("daily_quota must not be negative")
        if self.threads < 1 or self.webhook_threads < 1:
            raise ValueError("threads and webhook_threads must be at least 1")
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("webhook_secret is required when webhook_url is set")
        if self.webhook_secret:
            decode_secret(self.webhook_secret)  # ValueError names the problem, never the value

    def with_switches(self, switches: Mapping[str, Any]) -> SandboxConfig:
        """A copy with run-time ``switches`` applied; unknown or fixed ones raise ``ValueError``."""
        unknown = sorted(set(switches) - RUNTIME_SWITCHES)
        if unknown:
            raise ValueError(f"not run-time switches: {', '.join(unknown)}")
        values = dict(switches)
        if "api_keys" in values:
            values["api_keys"] = frozenset(values["api_keys"])
        return dataclasses.replace(self, **values)

    def public_view(self) -> dict[str, Any]:
        """The switches as JSON-friendly values, without the secret or the keys."""
        view = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.repr}
        view["webhook_secret_set"] = bool(self.webhook_secret)
        view["api_keys_count"] = len(self.api_keys)
        return view


#: What `POST /_sandbox/config` may change; the listening address and pool sizes are fixed at start.
RUNTIME_SWITCHES = frozenset(
    f.name
    for f in dataclasses.fields(SandboxConfig)
    if f.name not in {"host", "port", "threads", "webhook_threads"}
)
