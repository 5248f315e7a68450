"""Redis and PostgreSQL servers of the reliability suite's own, to stop, pause and restart at will.

The shared services on 6379/5432 are never touched: scenarios that take a service down start their
own on a free port. Each server is a subprocess stopped by its pid, even when a scenario fails.

    with own_redis() as server:
        server.url          # redis://127.0.0.1:<port>/0
        server.restart()    # SIGKILL, then a fresh empty server on the same port
        server.pause()      # SIGSTOP: connections hang (unreachable), data kept; resume() undoes it

    with own_postgres() as server:      # initdb'd once per test session, cached
        url = server.create_database("name")
        server.restart()
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import redis

from tests.sandbox_process import free_port

STARTUP_TIMEOUT_S = 30.0


class RedisServer:
    """A ``redis-server`` without persistence on a free loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (closed by close())

    @property
    def url(self) -> str:
        """Database 0 of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start an empty server and wait until it answers PING."""
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--daemonize", "no", "--maxmemory-policy", "noeviction"]
        self._process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        try:
            while True:
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return
                if time.monotonic() > deadline or self._process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """SIGKILL the server (everything in it is lost: it has no persistence)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a paused server must be able to die
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Lose everything: a new, empty server on the same port."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: the port stays open but nothing answers (clients hang or time out)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`: data and connections are as they were."""
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        self._log.close()


@contextlib.contextmanager
def own_redis() -> Iterator[RedisServer]:
    """A private Redis for the block."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


# --- PostgreSQL ----------------------------------------------------------------------------------


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return Path(found[-1]).parent


def _as_postgres(*argv: str) -> None:
    """Run a server command as the ``postgres`` user (the suite runs as root)."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *argv], check=True, capture_output=True, timeout=120)


@functools.cache
def _initdb_template() -> Path:
    """A freshly initdb'd data directory, made once per test session and copied for each server."""
    root = Path(tempfile.mkdtemp(prefix="pilot-reliability-pg-"))
    shutil.chown(root, "postgres", "postgres")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    template = root / "template"
    _as_postgres(str(_postgres_bin() / "initdb"), "-D", str(template), "-A", "trust", "-U", "postgres")
    return template


class PostgresServer:
    """A PostgreSQL cluster of the suite's own (trust auth, loopback, a free port)."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        # track_commit_timestamp lets a scenario ask when a row's transaction committed.
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 "
        options += "-c track_commit_timestamp=on -c max_connections=300 -c fsync=off"
        self._ctl("-o", options, "-l", str(self.data_dir / "server.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients; ``immediate``: like a crash)."""
        self._ctl("-m", mode, "-w", "stop")

    def restart(self, *, down_for: float = 0.0) -> None:
        """Stop, stay down ``down_for`` seconds, start again."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def create_database(self, name: str) -> str:
        """Create and migrate database ``name``; its URL."""
        from shared import migrations

        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        url = self.url(name)
        migrations.upgrade(url)
        return url

    def _ctl(self, *argv: str) -> None:
        _as_postgres(str(_postgres_bin() / "pg_ctl"), "-D", str(self.data_dir), *argv)


@contextlib.contextmanager
def own_postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for the block (a copy of the session's initdb'd template)."""
    template = _initdb_template()
    data_dir = template.parent / f"data-{free_port()}"
    subprocess.run(["cp", "-a", str(template), str(data_dir)], check=True)
    server = PostgresServer(data_dir)
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            server.stop("immediate")
        shutil.rmtree(data_dir, ignore_errors=True)
