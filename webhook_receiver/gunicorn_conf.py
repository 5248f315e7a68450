"""gunicorn settings of the receiver, the one place that says how it is served (compose, demo, tests):

    gunicorn --config python:webhook_receiver.gunicorn_conf --bind ADDRESS webhook_receiver.wsgi:app

gevent workers (a slow client holds a greenlet, not a thread), ``keepalive`` bounding the header
block, and the metrics directory set before any worker forks. Why: docs/architecture.md, "Webhooks"
(the receiver) and "Metrics across processes".
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

worker_class = "gevent"
workers = 2
#: Open connections per worker, slow ones included (a greenlet and a socket each); then it stops accepting.
worker_connections = 1000
#: Seconds a request's header block may take to arrive, and an idle kept-alive connection may wait:
#: Resend's headers come in one packet; a client needing more is cut off (gunicorn's default is 2 s).
HEADER_TIMEOUT_S = 5
keepalive = HEADER_TIMEOUT_S
#: A worker silent this long (its loop blocked) is killed and replaced by the arbiter.
timeout = 30

#: prometheus-client's environment variable (kept literal: importing the client here would be too early).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The directory on_starting made (the arbiter runs every hook, so a module global reaches on_exit).
_created: list[str] = []


def on_starting(server: Any) -> None:
    """Before the first worker: the settings checked, an empty metrics directory named in the
    workers' environment.

    A malformed setting stops the server here with one line naming the variable (and exit code 1),
    instead of every worker failing to boot with a traceback.
    """
    from shared.errors import ConfigError
    from shared.settings import load_settings

    try:
        load_settings()
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
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
