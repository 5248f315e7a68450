"""docker-compose.yml is consistent with the code: services, commands, environment, health checks.

No Docker engine runs here, so the file is parsed and checked rather than started.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared import task_names
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {
    "postgres",
    "redis",
    "migrate",
    "worker",
    "worker-transactional",
    "beat",
    "receiver",
    "proxy",
    "sandbox",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines())
    return {key.strip(): value for key, value in (p for p in pairs if len(p) == 2) if not key.startswith("#")}


def command(compose: dict[str, Any], service: str) -> list[str]:
    return [str(part) for part in compose["services"][service]["command"]]


def test_every_service_is_defined(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES


def test_sandbox_runs_only_under_the_dev_profile(compose: dict[str, Any]) -> None:
    assert compose["services"]["sandbox"]["profiles"] == ["dev"]
    optional = {"sandbox", "worker-transactional"}
    assert all("profiles" not in spec for name, spec in compose["services"].items() if name not in optional)


def test_postgres_has_lock_room_for_lookups_across_every_ledger_partition(compose: dict[str, Any]) -> None:
    postgres_command = command(compose, "postgres")

    assert postgres_command[:2] == ["postgres", "-c"]
    assert "max_locks_per_transaction=512" in postgres_command


def test_redis_keeps_an_append_only_file_and_never_evicts(compose: dict[str, Any]) -> None:
    redis_command = " ".join(command(compose, "redis"))

    assert "--appendonly yes" in redis_command
    assert "--maxmemory-policy noeviction" in redis_command


@pytest.mark.parametrize("service", ["postgres", "redis", "worker", "receiver", "proxy"])
def test_long_running_services_have_health_checks(compose: dict[str, Any], service: str) -> None:
    assert compose["services"][service]["healthcheck"]["test"]


def test_app_services_wait_for_the_migration(compose: dict[str, Any]) -> None:
    for service in ("worker", "beat", "receiver"):
        depends = compose["services"][service]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_worker_consumes_every_queue_in_priority_order(compose: dict[str, Any]) -> None:
    worker = command(compose, "worker")
    queues = tuple(worker[worker.index("--queues") + 1].split(","))

    assert queues == task_names.CONSUMED_QUEUES
    assert set(queues) >= set(task_names.TASK_QUEUES.values())


def test_the_dedicated_transactional_worker_consumes_only_the_priority_queue(compose: dict[str, Any]) -> None:
    worker = command(compose, "worker-transactional")

    assert worker[worker.index("--queues") + 1] == task_names.PRIORITY_SENDS_QUEUE
    assert compose["services"]["worker-transactional"]["profiles"] == ["transactional"]


@pytest.mark.parametrize(
    ("service", "module"),
    [
        ("worker", "worker.celery_app"),
        ("beat", "worker.celery_app"),
        ("receiver", "webhook_receiver.wsgi"),
        ("sandbox", "sandbox.__main__"),
    ],
)
def test_commands_name_modules_that_exist(compose: dict[str, Any], service: str, module: str) -> None:
    text = " ".join(command(compose, service))

    assert module.removesuffix(".__main__") in text
    assert importlib.util.find_spec(module) is not None


def test_migrate_runs_the_pilot_upgrade(compose: dict[str, Any]) -> None:
    assert command(compose, "migrate") == ["pilot", "db", "upgrade"]


def test_sandbox_sends_webhooks_to_the_receiver_route(compose: dict[str, Any]) -> None:
    sandbox = command(compose, "sandbox")
    receiver = " ".join(command(compose, "receiver"))

    url = sandbox[sandbox.index("--webhook-url") + 1]
    assert url.endswith("/api/webhooks/resend")
    assert url.split("//")[1].split("/")[0].split(":")[1] in receiver


def test_env_example_names_only_real_settings() -> None:
    known = {name.upper() for name in Settings.model_fields} | {"POSTGRES_PASSWORD"}

    assert set(env_example()) <= known


def test_env_example_loads_as_settings() -> None:
    values = {k.lower(): v for k, v in env_example().items() if k != "POSTGRES_PASSWORD" and v}

    settings = Settings(**values)

    assert settings.database_url.startswith("postgresql+psycopg://pilot:")


def test_sandbox_webhook_secret_is_not_on_its_command_line(compose: dict[str, Any]) -> None:
    sandbox = compose["services"]["sandbox"]

    assert not any("SECRET" in part for part in command(compose, "sandbox"))
    assert sandbox["environment"]["SANDBOX_WEBHOOK_SECRET"] == "${RESEND_WEBHOOK_SECRET}"


def test_receiver_is_published_only_through_the_buffering_proxy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    server_block = compose["configs"]["nginx_receiver"]["content"]

    assert "ports" not in services["receiver"]
    assert services["proxy"]["ports"] == ["8000:8000"]
    assert services["proxy"]["configs"] == [
        {"source": "nginx_receiver", "target": "/etc/nginx/conf.d/default.conf"}
    ]
    assert "server receiver:8000;" in server_block
    assert "proxy_request_buffering on;" in server_block


def test_receiver_command_takes_its_settings_from_the_gunicorn_config(compose: dict[str, Any]) -> None:
    receiver = command(compose, "receiver")

    assert receiver[receiver.index("--config") + 1] == "python:webhook_receiver.gunicorn_conf"
    assert not {"--workers", "--threads", "--worker-class", "-k", "--keep-alive"} & set(receiver)
