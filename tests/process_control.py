"""Start-up and shutdown of server subprocesses in tests (sandbox, gunicorn receiver)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import IO

import httpx


def wait_until_answering(
    url: str,
    process: subprocess.Popen[bytes],
    log: IO[bytes],
    *,
    name: str,
    timeout: float,
    ready: Callable[[httpx.Response], bool] = lambda _: True,
) -> None:
    """Poll ``url`` until an answer satisfies ``ready``; raise with the log's tail if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if ready(httpx.get(url, timeout=5)):
                return
        time.sleep(0.05)
    log.seek(0)
    output = log.read().decode(errors="replace")[-4000:]
    raise RuntimeError(f"{name} did not start (exit code {process.poll()}):\n{output}")


def stop_process(process: subprocess.Popen[bytes], *, grace: float = 15.0) -> None:
    """SIGTERM the process by pid (a gunicorn arbiter stops its workers); SIGKILL if it lingers."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
