"""Check that PostgreSQL and Redis answer; print how to start them when they do not.

Run as ``python -m shared.service_check`` (``make test`` and ``make demo`` do).
"""

from __future__ import annotations

import os
import sys

import psycopg
import redis

from shared.settings import mask_url_password

HOW_TO_START = """\
Start them with one of:
  docker compose up -d postgres redis
  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no"""


def postgres_problem(url: str) -> str | None:
    """None when PostgreSQL at ``url`` answers, else a one-line reason."""
    try:
        with psycopg.connect(url.replace("+psycopg", ""), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL does not answer at {mask_url_password(url)}: {str(exc).strip()}"
    return None


def redis_problem(url: str) -> str | None:
    """None when Redis at ``url`` answers, else a one-line reason."""
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis does not answer at {mask_url_password(url)}: {exc}"
    return None


def main() -> int:
    """Exit 0 when both services answer; else print what failed and how to start it."""
    postgres_url = os.environ.get("PILOT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("PILOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    problems = [p for p in (postgres_problem(postgres_url), redis_problem(redis_url)) if p]
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(HOW_TO_START, file=sys.stderr)
        return 1
    print("PostgreSQL and Redis answer.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
