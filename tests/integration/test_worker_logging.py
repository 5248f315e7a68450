"""The worker logs through our set-up: the JSON format switch applies and secrets are redacted."""

from __future__ import annotations

import json

from tests.worker_process import isolated_redis_db, running_worker, worker_env

CANARY = "re_CANARY_worker_log_key_42"


def test_worker_logs_json_lines_without_secrets(fresh_database_url: str) -> None:
    with isolated_redis_db() as db:
        env = worker_env(
            database_url=fresh_database_url,
            redis_db=db,
            resend_base_url="http://127.0.0.1:9",
            resend_api_key=CANARY,
            PILOT_LOG_FORMAT="json",
            PILOT_LOG_LEVEL="INFO",
        )
        with running_worker(env, concurrency=1) as worker:
            log = worker.log()

    lines = [line for line in log.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records, log
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any("ready" in record["message"] for record in records)
    assert CANARY not in log
