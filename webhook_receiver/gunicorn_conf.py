"""gunicorn settings of the receiver: prometheus-client's multiprocess mode across prefork workers.

    gunicorn --config python:webhook_receiver.gunicorn_conf ... webhook_receiver.wsgi:app

Workers count into files under ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums them. prometheus-client
picks its storage when it is first imported, so the directory is set in the arbiter before any worker
forks (the app, and prometheus-client with it, is loaded in each worker: no ``--preload``). An operator's
directory is kept but emptied of the last run's files; otherwise a temporary one is made and removed at
exit. A dead worker's live-gauge files are released by ``mark_process_dead``; its counts stay summed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

#: prometheus-client's environment variable (kept literal: importing the client here would be too early).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The directory on_starting made (the arbiter runs every hook, so a module global reaches on_exit).
_created: list[str] = []


def on_starting(server: Any) -> None:
    """Before the first worker: an empty metrics directory, named in the workers' environment."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
    else:
        directory = tempfile.mkdtemp(prefix="pilot-receiver-metrics-")
        _created.append(directory)
    os.environ[MULTIPROC_ENV] = directory


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: release its live gauges (counters and histograms keep its counts)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    """Remove the directory made in :func:`on_starting`, never an operator's."""
    for directory in _created:
        shutil.rmtree(directory, ignore_errors=True)
