"""A threads-pool worker keeps one connection per thread: more threads than the old pool bound
(5 + 5 overflow) must each get theirs at once, and a pool timeout is retried, never dropped."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.sending.context import SendContext
from shared.settings import load_settings
from worker import tasks

pytestmark = pytest.mark.integration

THREADS = 16


def test_send_context_gives_every_thread_its_own_held_connection(fresh_database_url: str) -> None:
    ctx = SendContext.from_settings(load_settings(database_url=fresh_database_url))
    ctx.engine.pool._timeout = 2  # type: ignore[attr-defined]  # a wait would fail fast, not in 30 s
    everyone_connected = threading.Barrier(THREADS, timeout=20)

    def hold(_: int) -> int:
        try:
            with ctx.held_connection() as connection:
                pid = int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
                everyone_connected.wait()  # all threads hold a connection at the same moment
                return pid
        finally:
            ctx.release()  # back to the pool, so closing the engine closes it

    try:
        # First use in this thread: lazy imports must not run in 16 threads at once (CPython 3.11
        # compiles rewritten test modules with a non-thread-safe recursion counter).
        with ctx.held_connection() as connection:
            connection.execute(text("SELECT 1"))
        ctx.release()
        with ThreadPoolExecutor(THREADS) as pool:
            assert len(set(pool.map(hold, range(THREADS)))) == THREADS
    finally:
        ctx.close()


@pytest.mark.parametrize("task", [tasks.send_email, tasks.send_batch])
@pytest.mark.parametrize(
    "error",
    [
        PoolTimeout("no connection free"),
        psycopg.errors.AdminShutdown("restart"),
        psycopg.OperationalError("down"),
    ],
)
def test_send_tasks_retry_database_outages_and_pool_timeouts(task: object, error: Exception) -> None:
    # psycopg errors come unwrapped from the dispatcher (raw psycopg connection).
    assert isinstance(error, task.autoretry_for)  # type: ignore[attr-defined]
