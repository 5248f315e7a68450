"""Start the real webhook receiver under gunicorn as a subprocess, for tests and benchmarks.

    with running_receiver(database_url=url, broker_url=broker, secret=SECRET_A) as receiver:
        httpx.post(f"{receiver.url}/api/webhooks/resend", ...)

The gunicorn arbiter is stopped by its pid (it stops its workers).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.process_control import stop_process, wait_until_answering
from tests.sandbox_process import free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ReceiverHandle:
    """A running receiver: base URL, the gunicorn arbiter's pid and its log (stdout and stderr)."""

    url: str
    pid: int
    log: IO[bytes] = field(repr=False, compare=False)

    def output(self) -> str:
        """Everything the server has logged so far."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    @property
    def webhook_url(self) -> str:
        """Where Resend (or the sandbox) posts."""
        return f"{self.url}/api/webhooks/resend"


#: The receiver's gunicorn configuration (worker class, timeouts, metrics), as in production.
RECEIVER_CONFIG = "python:webhook_receiver.gunicorn_conf"


def gunicorn_argv(app: str, port: int, *, workers: int | None = None, extra: Sequence[str] = ()) -> list[str]:
    """The gunicorn command line serving ``app`` on loopback ``port`` with the receiver's settings
    (the same for any app; ``workers`` and ``extra`` switches override them)."""
    override = ["--workers", str(workers)] if workers is not None else []
    return [
        sys.executable, "-m", "gunicorn", "--config", RECEIVER_CONFIG, "--bind", f"127.0.0.1:{port}",
        *override, *extra, "--log-level", "warning", app,
    ]  # fmt: skip


@contextlib.contextmanager
def running_gunicorn(
    app: str,
    *,
    env: dict[str, str],
    workers: int | None = None,
    extra: Sequence[str] = (),
    startup_timeout: float = 30.0,
    port: int | None = None,
) -> Iterator[ReceiverHandle]:
    """Serve WSGI ``app`` (``module:name``) under gunicorn until the block ends (on ``port``, else a
    free one)."""
    port = port or free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            gunicorn_argv(app, port, workers=workers, extra=extra),
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            handle = ReceiverHandle(f"http://127.0.0.1:{port}", process.pid, log)
            # Any answer means a worker is serving (/healthz may be 503 if a dependency is down).
            wait_until_answering(
                f"{handle.url}/healthz", process, log, name="gunicorn", timeout=startup_timeout
            )
            yield handle
        finally:
            stop_process(process)


@contextlib.contextmanager
def running_receiver(
    *,
    database_url: str,
    broker_url: str,
    secret: str,
    workers: int | None = None,
    extra: Sequence[str] = (),
    log_level: str = "WARNING",
    port: int | None = None,
    environment: dict[str, str] | None = None,
) -> Iterator[ReceiverHandle]:
    """The receiver (``webhook_receiver.wsgi:app``) configured by environment, as in production
    (``environment``: more variables)."""
    env = {
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "RESEND_WEBHOOK_SECRET": secret,
        "PILOT_LOG_LEVEL": log_level,
        **(environment or {}),
    }
    with running_gunicorn(
        "webhook_receiver.wsgi:app", env=env, workers=workers, extra=extra, port=port
    ) as handle:
        yield handle
