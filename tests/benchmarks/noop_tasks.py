"""A no-op task for bench_worker.py: the ceiling of one Celery task per email on the same worker.

Loaded only by the benchmark (``celery worker --include tests.benchmarks.noop_tasks``). It records
the first and last execution times in Redis, so throughput is measured inside the worker.
"""

from __future__ import annotations

import os
import time

import redis
from celery import shared_task

NOOP_TASK = "pilot.bench_noop"
_clients: dict[int, redis.Redis] = {}


def _redis() -> redis.Redis:
    client = _clients.get(os.getpid())
    if client is None:
        client = _clients[os.getpid()] = redis.Redis.from_url(os.environ["REDIS_URL"])
    return client


@shared_task(name=NOOP_TASK)
def noop(run: str) -> None:
    """Do nothing but note the time (first one wins ``first``; every one moves ``last``)."""
    now = repr(time.time())
    pipe = _redis().pipeline(transaction=False)
    pipe.set(f"bench:{run}:first", now, nx=True)
    pipe.set(f"bench:{run}:last", now)
    pipe.incr(f"bench:{run}:count")
    pipe.execute()
