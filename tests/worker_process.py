"""Run a real ``celery worker`` subprocess for end-to-end tests and benchmarks.

    with isolated_redis_db() as db:
        env = worker_env(database_url=..., redis_db=db, resend_base_url=sandbox.url)
        with running_worker(env, concurrency=2, pool="prefork") as worker:
            ...  # publish tasks with make_celery(load_settings(...)).send_task(...)
            os.kill(worker.child_pids()[0], signal.SIGKILL)

The worker runs in its own process group and is stopped by its pid (SIGTERM to the group, SIGKILL
if it lingers). Each run gets a Redis database of its own (1-13, taken with a lock key in db 0 and
flushed before and after; the lock names are those of conftest's ``isolated_redis_url``), so the
broker queues of concurrent runs never mix.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from shared import task_names

ROOT = Path(__file__).resolve().parents[1]
REDIS_HOST_URL = os.environ.get("PILOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
#: How long one run may keep a Redis database; a crashed run's lock expires after this.
DB_LOCK_SECONDS = 1800
#: The same lock names and databases as conftest's ``isolated_redis_url`` (db 15 is the demo's).
DB_LOCK_PREFIX = "pilot-test-redis-db-lock:"
TEST_REDIS_DATABASES = range(1, 14)
ALL_QUEUES = (task_names.PRIORITY_SENDS_QUEUE, task_names.MAINTENANCE_QUEUE, task_names.SENDS_QUEUE)


@dataclass(frozen=True)
class WorkerHandle:
    """A running worker: the main process id and a way to find its pool children."""

    pid: int
    log_path: str
    node: str

    def child_pids(self) -> list[int]:
        """Pids of the pool's child processes (prefork), from ``/proc``."""
        return children_of(self.pid)

    def log(self) -> str:
        """The worker's output so far."""
        return Path(self.log_path).read_text(errors="replace")


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux ``/proc``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # Fields after the command name (which may hold spaces) start after the last ")".
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.append(int(entry.name))
    return sorted(found)


@contextlib.contextmanager
def isolated_redis_db() -> Iterator[int]:
    """A Redis database number (1-13) nobody else uses during the block; flushed before and after."""
    admin = redis.Redis.from_url(f"{REDIS_HOST_URL}/0")
    token = uuid.uuid4().hex
    deadline = time.monotonic() + 60
    while True:
        for db in TEST_REDIS_DATABASES:
            if admin.set(f"{DB_LOCK_PREFIX}{db}", token, nx=True, ex=DB_LOCK_SECONDS):
                try:
                    _flush(db)
                    yield db
                finally:
                    _flush(db)
                    if admin.get(f"{DB_LOCK_PREFIX}{db}") == token.encode():
                        admin.delete(f"{DB_LOCK_PREFIX}{db}")
                    admin.close()
                return
        if time.monotonic() > deadline:
            raise RuntimeError("no free Redis database (1-13) for the worker test")
        time.sleep(0.5)


def _flush(db: int) -> None:
    client = redis.Redis.from_url(f"{REDIS_HOST_URL}/{db}")
    client.flushdb()
    client.close()


def worker_env(
    *,
    database_url: str,
    redis_db: int,
    resend_base_url: str,
    resend_api_key: str = "re_e2e_fallback_key",
    encryption_keys: str | None = None,
    requests_per_second: float = 1000.0,
    **extra: str,
) -> dict[str, str]:
    """Environment for a worker (and for the publishing side) using its own Redis database."""
    url = f"{REDIS_HOST_URL}/{redis_db}"
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": url,
        "CELERY_BROKER_URL": url,
        "PILOT_REDIS_PREFIX": f"pilot-e2e-{uuid.uuid4().hex[:8]}:",
        "RESEND_BASE_URL": resend_base_url,
        "RESEND_API_KEY": resend_api_key,
        "RESEND_REQUESTS_PER_SECOND": str(requests_per_second),
        "PILOT_LOG_LEVEL": "WARNING",
        # No metrics port unless a test asks for one: concurrent test workers never fight over 9808.
        "PILOT_WORKER_METRICS_PORT": "0",
        **extra,
    }
    if encryption_keys:
        env["PILOT_ENCRYPTION_KEYS"] = encryption_keys
    return env


def worker_argv(
    *, concurrency: int, pool: str, queues: Sequence[str], app: str, include: Sequence[str], node: str
) -> list[str]:
    """The ``celery worker`` command line."""
    argv = [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", ",".join(queues)]
    argv += ["-c", str(concurrency), "--pool", pool, "--loglevel", "WARNING"]
    argv += ["-n", node, "--without-gossip", "--without-mingle", "--without-heartbeat"]
    if include:
        argv += ["--include", ",".join(include)]
    return argv


@contextlib.contextmanager
def running_worker(
    env: dict[str, str],
    *,
    concurrency: int = 2,
    pool: str = "prefork",
    queues: Sequence[str] = ALL_QUEUES,
    app: str = "worker.celery_app",
    include: Sequence[str] = (),
    startup_timeout: float = 60.0,
    root: Path = ROOT,
) -> Iterator[WorkerHandle]:
    """Start a worker, wait until it consumes, yield it, then stop it by pid (its whole group).

    ``root``: the source tree whose code it runs (another checkout, for a benchmark's baseline).
    """
    with tempfile.NamedTemporaryFile(prefix="pilot-worker-", suffix=".log", delete=False) as log:
        log_path = log.name
    full_env = {**os.environ, **env}
    node = f"pilot-test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    argv = worker_argv(concurrency=concurrency, pool=pool, queues=queues, app=app, include=include, node=node)
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            argv,
            cwd=root,
            env={**full_env, "PYTHONPATH": str(root)} if root != ROOT else full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its children
        )
    handle = WorkerHandle(process.pid, log_path, node)
    try:
        _wait_ready(process, handle, startup_timeout, broker_url=env["CELERY_BROKER_URL"])
        yield handle
    finally:
        stop(process)
        with contextlib.suppress(OSError):
            os.unlink(log_path)


def _wait_ready(
    process: subprocess.Popen[Any], handle: WorkerHandle, timeout: float, *, broker_url: str
) -> None:
    """Wait until the worker answers a remote-control ping (it consumes from then on)."""
    from celery import Celery

    probe = Celery("pilot-test-probe", broker=broker_url, set_as_current=False)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if probe.control.ping(destination=[handle.node], timeout=0.5):
                return
        raise RuntimeError(f"worker did not start (exit code {process.poll()}):\n{handle.log()[-4000:]}")
    finally:
        probe.close()


def stop(process: subprocess.Popen[Any], *, timeout: float = 20.0) -> None:
    """SIGTERM the worker's process group (warm shutdown), SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    # Pool children that outlived the main process belong to the same group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_beat(env: dict[str, str], *, app: str = "worker.celery_app") -> Iterator[int]:
    """Run ``celery beat`` (its schedule file in a temporary directory) until the block ends; its pid.
    Stopped by pid, like the worker."""
    with tempfile.TemporaryDirectory(prefix="pilot-beat-") as work:
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            app,
            "beat",
            "-s",
            f"{work}/schedule",
            "--loglevel",
            "WARNING",
        ]
        with open(f"{work}/beat.log", "wb") as log_file:
            process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            yield process.pid
        finally:
            stop(process)
