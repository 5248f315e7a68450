"""Every failure an operator meets on the first day is one line naming what is wrong, never a traceback.

Each case runs the real process as an operator starts it (`pilot`, `celery -A worker.celery_app`,
gunicorn with the receiver's config) and reads what it prints on stderr.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.crypto import generate_key
from tests.conftest import create_database, database_url_for, drop_database
from tests.sandbox_process import free_port

ROOT = Path(__file__).resolve().parents[2]
#: gunicorn's own start-up banner (``[time] [pid] [INFO] Starting gunicorn``) is not an error line.
GUNICORN_INFO = re.compile(r"^\[[^\]]+\] \[\d+\] \[INFO\] ")
#: A port nothing listens on: connections are refused at once.
CLOSED_PORT_URL = "redis://127.0.0.1:1/0"


def run(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PILOT_ENCRYPTION_KEYS": generate_key(), **env}
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def pilot(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run("-m", "shared.cli", *args, **env)


def the_one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line the process printed on stderr (gunicorn's banner aside), after a failing exit."""
    lines = [line for line in result.stderr.splitlines() if line.strip() and not GUNICORN_INFO.match(line)]
    assert result.returncode != 0, result.stdout
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def empty_database_url() -> Iterator[str]:
    """A database that exists but was never migrated."""
    name = f"pilot_test_empty_{uuid.uuid4().hex[:10]}"
    url = create_database(name)
    yield url
    drop_database(name)


def test_a_duplicate_connector_name_is_one_line_naming_the_name(fresh_database_url: str) -> None:
    org = pilot("org", "create", "Acme", DATABASE_URL=fresh_database_url).stdout.strip()
    add = ("connector", "add", "--org", org, "--name", "main")
    assert pilot(*add, DATABASE_URL=fresh_database_url).returncode == 0

    line = the_one_error_line(pilot(*add, DATABASE_URL=fresh_database_url))

    assert line == f"Error: organization {org} already has a connector named 'main'"


def test_send_with_the_broker_down_is_one_line_naming_the_broker(fresh_database_url: str) -> None:
    org = pilot("org", "create", "Acme", DATABASE_URL=fresh_database_url).stdout.strip()
    connector = pilot(
        "connector", "add", "--org", org, "--name", "main", "--from", "news@acme.test",
        DATABASE_URL=fresh_database_url,
    ).stdout.strip()  # fmt: skip

    result = pilot(
        "send", "--connector", connector, "--to", "a@example.com", "--subject", "Hi", "--text", "x",
        DATABASE_URL=fresh_database_url, REDIS_URL=CLOSED_PORT_URL,
    )  # fmt: skip

    assert the_one_error_line(result).startswith(f"Error: broker unavailable at {CLOSED_PORT_URL}: ")


def test_status_on_an_unmigrated_database_says_to_migrate(empty_database_url: str) -> None:
    line = the_one_error_line(pilot("status", DATABASE_URL=empty_database_url))

    assert line.endswith("is not migrated: run `pilot db upgrade`")


def test_upgrade_of_a_database_that_does_not_exist_says_how_to_create_it() -> None:
    name = f"pilot_test_missing_{uuid.uuid4().hex[:10]}"

    line = the_one_error_line(pilot("db", "upgrade", DATABASE_URL=database_url_for(name)))

    assert line.startswith(f"Error: database '{name}' does not exist")
    assert "`pilot db create`" in line


def test_the_receiver_with_a_malformed_webhook_secret_stops_with_one_line_naming_it() -> None:
    result = run(
        "-m", "gunicorn", "--config", "python:webhook_receiver.gunicorn_conf",
        "--bind", f"127.0.0.1:{free_port()}", "webhook_receiver.wsgi:app",
        RESEND_WEBHOOK_SECRET="whsec_not-base64!",
    )  # fmt: skip

    line = the_one_error_line(result)

    assert line.startswith("invalid configuration: RESEND_WEBHOOK_SECRET: ")
    assert "not-base64" not in line


def test_a_worker_with_an_unknown_log_level_stops_with_one_line_naming_the_variable() -> None:
    result = run("-m", "celery", "-A", "worker.celery_app", "worker", PILOT_LOG_LEVEL="LOUD")

    line = the_one_error_line(result)

    assert line.startswith("invalid configuration: PILOT_LOG_LEVEL: ")
    assert "LOUD" not in line
