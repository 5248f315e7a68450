"""Start the real sandbox server (gunicorn, `python -m sandbox`) as a subprocess for tests and benchmarks.

    with running_sandbox(rate_limit_per_second=0, webhook_url=url, webhook_secret=secret) as sandbox:
        httpx.post(f"{sandbox.url}/emails", ...)
        sandbox.emails()

Switches are :class:`sandbox.config.SandboxConfig` field names. The process is stopped by its pid.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sandbox.server import API_KEYS_ENV, WEBHOOK_SECRET_ENV
from tests.process_control import stop_process, wait_until_answering

ROOT = Path(__file__).resolve().parents[1]
# The signing secret of the module-wide sandbox the integration tests share (`sandbox_server`).
SANDBOX_WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass(frozen=True)
class SandboxHandle:
    """A running sandbox: its base URL and process id, with helpers for the `/_sandbox` endpoints."""

    url: str
    pid: int

    def emails(self) -> list[dict[str, Any]]:
        """Every accepted email (`GET /_sandbox/emails`)."""
        data: list[dict[str, Any]] = httpx.get(f"{self.url}/_sandbox/emails", timeout=30).json()["data"]
        return data

    def stats(self) -> dict[str, Any]:
        """Counters and the per-second request histogram (`GET /_sandbox/stats`)."""
        stats: dict[str, Any] = httpx.get(f"{self.url}/_sandbox/stats", timeout=30).json()
        return stats

    def configure(self, **switches: Any) -> dict[str, Any]:
        """Change fault switches at run time (`POST /_sandbox/config`)."""
        response = httpx.post(f"{self.url}/_sandbox/config", json=switches, timeout=30)
        response.raise_for_status()
        config: dict[str, Any] = response.json()
        return config

    def reset(self) -> None:
        """Forget every email, key and counter (`POST /_sandbox/reset`)."""
        httpx.post(f"{self.url}/_sandbox/reset", timeout=30).raise_for_status()


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sandbox_command(port: int, switches: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The `python -m sandbox` command line for ``switches`` and its environment (the secrets)."""
    argv = [sys.executable, "-m", "sandbox", "--port", str(port)]
    env = dict(os.environ)
    for name, value in switches.items():
        if name == "api_keys":
            env[API_KEYS_ENV] = ",".join(value)
        elif name == "webhook_secret":
            env[WEBHOOK_SECRET_ENV] = value
        elif isinstance(value, bool):
            argv += [f"--{name.replace('_', '-')}"] if value else []
        elif value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv, env


@contextlib.contextmanager
def running_sandbox(*, startup_timeout: float = 30.0, **switches: Any) -> Iterator[SandboxHandle]:
    """Run a sandbox on a free port until the block ends; fails if it does not answer in time."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        argv, env = sandbox_command(port, switches)
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            handle = SandboxHandle(f"http://127.0.0.1:{port}", process.pid)
            wait_until_answering(
                f"{handle.url}/_sandbox/stats",
                process,
                log,
                name="sandbox",
                timeout=startup_timeout,
                ready=lambda response: response.status_code == 200,
            )
            yield handle
        finally:
            stop_process(process)
