"""Child processes of the demo: started in their own process groups, stopped by pid, logs to files."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

#: How long a child gets to stop after SIGTERM before SIGKILL (Celery's soft shutdown included).
STOP_GRACE_S = 15.0


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Child:
    """A started process: its name, handle and log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of its log."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def start(name: str, argv: Sequence[str], *, env: Mapping[str, str], log_dir: Path) -> Child:
    """Start ``argv`` in a new session (its own process group), output to ``log_dir/name.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(argv), env=dict(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Child(name, process, log_path)


def python_module(module: str, *args: str) -> list[str]:
    """argv running ``python -m module args`` with this interpreter (the project's venv)."""
    return [sys.executable, "-m", module, *args]


def stop(children: Sequence[Child], *, grace: float = STOP_GRACE_S) -> None:
    """SIGTERM every child's process group, then SIGKILL what is left after ``grace`` seconds."""
    for child in children:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(child, signal.SIGKILL)
            child.process.wait(timeout=5)
    for child in children:
        _signal_group(child, signal.SIGKILL)  # stragglers of the group (pool children)


def _signal_group(child: Child, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signum)


def wait_for_http(url: str, child: Child, *, timeout: float = 30.0) -> None:
    """Wait until ``url`` answers 2xx; raise with the child's log tail if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited with {child.process.returncode}:\n{child.log_tail()}")
        try:
            if httpx.get(url, timeout=1.0).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{child.name} did not answer {url} within {timeout:.0f}s:\n{child.log_tail()}")
