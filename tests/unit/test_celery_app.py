"""worker.celery_app: the reliability settings and the routing of every task name to its own queue."""

from __future__ import annotations

import pytest
from celery.schedules import crontab

import worker.beat.tasks  # noqa: F401  (registers the beat tasks on every app)
from shared import task_names
from shared.settings import load_settings
from worker.celery_app import SEND_TIME_LIMIT_S, VISIBILITY_TIMEOUT_S, celery_config, make_celery


@pytest.fixture
def config() -> dict[str, object]:
    return celery_config(load_settings(redis_url="redis://127.0.0.1:6379/9"))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("task_acks_late", True),
        ("task_reject_on_worker_lost", True),
        ("worker_prefetch_multiplier", 1),
        ("worker_cancel_long_running_tasks_on_connection_loss", True),
        ("task_serializer", "json"),
        ("accept_content", ["json"]),
    ],
)
def test_celery_config_sets_reliability_option(config: dict[str, object], name: str, value: object) -> None:
    assert config[name] == value


def test_celery_visibility_timeout_is_far_above_the_task_time_limit(config: dict[str, object]) -> None:
    assert VISIBILITY_TIMEOUT_S >= 10 * SEND_TIME_LIMIT_S
    assert config["broker_transport_options"]["visibility_timeout"] == VISIBILITY_TIMEOUT_S  # type: ignore[index]


def test_a_worker_takes_from_its_queues_in_priority_order(config: dict[str, object]) -> None:
    assert config["broker_transport_options"]["queue_order_strategy"] == "priority"  # type: ignore[index]
    assert [queue.name for queue in config["task_queues"]] == list(task_names.CONSUMED_QUEUES)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("name", "queue"), sorted(task_names.TASK_QUEUES.items()))
def test_celery_routes_each_task_to_its_queue_only(name: str, queue: str) -> None:
    app = make_celery(load_settings())
    route = app.amqp.router.route({}, name, args=(), kwargs={})["queue"]

    # The routing key must be bound to exactly one queue, or a message would be copied to several.
    bound = [q.name for q in app.amqp.queues.values() if q.routing_key == route.routing_key]
    assert (route.name, bound) == (queue, [queue])


def test_beat_rolls_up_the_ledger_nightly_after_midnight_utc(config: dict[str, object]) -> None:
    entry = config["beat_schedule"]["roll-up-ledger"]  # type: ignore[index]

    assert entry["task"] == task_names.ROLL_UP_LEDGER
    assert entry["schedule"] == crontab(minute=30, hour=0)
    assert config["timezone"] == "UTC"


def test_the_ledger_rollup_may_run_longer_than_a_send_but_not_past_the_visibility_timeout() -> None:
    app = make_celery(load_settings())

    task = app.tasks[task_names.ROLL_UP_LEDGER]

    assert SEND_TIME_LIMIT_S < task.time_limit < VISIBILITY_TIMEOUT_S
