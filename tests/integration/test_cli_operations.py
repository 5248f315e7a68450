"""`pilot send`, `usage`, `status`, `events replay` and `connector test` against real services."""

from __future__ import annotations

import json

import pytest
import redis
from sqlalchemy import select

from shared import connector_store as store
from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import ConnectorStatus, WebhookEvent
from shared.settings import get_settings, load_settings
from tests.integration.conftest import Pilot
from tests.sandbox_process import running_sandbox


def new_connector(pilot: Pilot, *extra: str) -> str:
    org = pilot("org", "create", "Acme").output.strip()
    result = pilot(
        "connector", "add", "--org", org, "--name", "main", "--from", "Acme <news@acme.test>", *extra
    )
    assert result.exit_code == 0, result.output
    return str(result.output.strip())


def queued_messages(redis_url: str, queue: str) -> list[dict[str, object]]:
    client = redis.Redis.from_url(redis_url)
    return [json.loads(raw) for raw in client.lrange(queue, 0, -1)]


def test_send_enqueues_one_send_email_task_in_the_priority_queue(
    pilot: Pilot, isolated_redis_url: str
) -> None:
    connector = new_connector(pilot)

    result = pilot(
        "send", "--connector", connector, "--to", "a@example.com", "--subject", "Hi", "--text", "Hello"
    )

    assert result.exit_code == 0, result.output
    assert queued_messages(isolated_redis_url, "pilot.sends") == []
    [message] = queued_messages(isolated_redis_url, "pilot.sends.priority")
    assert message["headers"]["task"] == "pilot.send_email"  # type: ignore[index]
    assert message["headers"]["id"] == result.output.strip()  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--to", "not-an-address", "--subject", "Hi", "--text", "x"), "to"),
        (("--to", "a@example.com", "--subject", "Hi"), "give --html or --text"),
        (("--to", "a@b", "--subject", "Hi", "--text", "x"), "to.0: must be one address"),
        (("--to", "a@example.com", "--subject", "Hi", "--text", "x", "--from", "bad-sender"), "from:"),
        (
            ("--to", "a@example.com", "--subject", "Hi", "--text", "x", "--idempotency-key", "a b"),
            "idempotency_key must be printable ASCII without spaces",
        ),
    ],
)
def test_send_refuses_bad_input_before_enqueueing(
    pilot: Pilot, isolated_redis_url: str, args, message: str
) -> None:
    connector = new_connector(pilot)

    result = pilot("send", "--connector", connector, *args)

    assert result.exit_code == 1
    assert message in result.output
    assert queued_messages(isolated_redis_url, "pilot.sends") == []
    assert queued_messages(isolated_redis_url, "pilot.sends.priority") == []


def test_usage_shows_hour_and_day_windows(pilot: Pilot) -> None:
    connector = new_connector(pilot, "--per-hour", "50", "--per-day", "500")

    result = pilot("usage", connector)

    assert result.exit_code == 0, result.output
    assert "hour" in result.output and "50" in result.output and "500" in result.output


def test_status_lists_connectors_and_events(pilot: Pilot) -> None:
    new_connector(pilot)

    result = pilot("status")

    assert result.exit_code == 0, result.output
    assert "main" in result.output and "Webhook events: 0 waiting, 0 orphaned" in result.output


def test_events_replay_resets_and_enqueues_orphans(
    pilot, fresh_database_url: str, isolated_redis_url: str
) -> None:
    engine = make_engine(load_settings(database_url=fresh_database_url))
    with transaction(make_sessionmaker(engine)) as session:
        session.add(
            WebhookEvent(svix_id="msg_orphan", type="email.sent", payload={}, error="orphan: not in ledger")
        )
        session.add(WebhookEvent(svix_id="msg_fine", type="email.sent", payload={}))

    result = pilot("events", "replay", "--orphans")

    assert result.exit_code == 0, result.output
    assert "Replaying 1 event(s)" in result.output
    with make_sessionmaker(engine)() as session:
        orphan = session.scalars(select(WebhookEvent).where(WebhookEvent.svix_id == "msg_orphan")).one()
    assert orphan.error is None and orphan.processed_at is None
    assert len(queued_messages(isolated_redis_url, "pilot.events")) == 1
    engine.dispose()


def test_events_replay_without_a_selection_is_refused(pilot: Pilot) -> None:
    result = pilot("events", "replay")

    assert result.exit_code == 1
    assert "--orphans" in result.output


def test_connector_test_passes_against_the_sandbox(pilot: Pilot, monkeypatch: pytest.MonkeyPatch) -> None:
    with running_sandbox(rate_limit_per_second=0) as sandbox:
        monkeypatch.setenv("RESEND_BASE_URL", sandbox.url)
        get_settings.cache_clear()
        connector = new_connector(pilot, "--api-key", "re_cli_test_key")

        result = pilot("connector", "test", connector)

    assert result.exit_code == 0, result.output
    assert "OK: full_access" in result.output


def test_connector_test_reports_a_rejected_key(pilot: Pilot, monkeypatch: pytest.MonkeyPatch) -> None:
    with running_sandbox(rate_limit_per_second=0, api_keys=["re_only_this_one"]) as sandbox:
        monkeypatch.setenv("RESEND_BASE_URL", sandbox.url)
        get_settings.cache_clear()
        connector = new_connector(pilot, "--api-key", "re_wrong_key")

        result = pilot("connector", "test", connector)

    assert result.exit_code == 1
    assert "connection test failed" in result.output
    assert "re_wrong_key" not in result.output


def test_connector_test_that_passes_brings_a_connector_in_error_back_to_active(
    pilot: Pilot, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(load_settings(database_url=fresh_database_url))
    factory = make_sessionmaker(engine)
    with running_sandbox(rate_limit_per_second=0) as sandbox:
        monkeypatch.setenv("RESEND_BASE_URL", sandbox.url)
        get_settings.cache_clear()
        connector = new_connector(pilot, "--api-key", "re_cli_test_key")
        with transaction(factory) as session:  # as a key Resend refused earlier leaves it
            row = store.get_connector(session, connector, for_update=True)
            store.set_status(session, row, ConnectorStatus.ERROR, actor="test", reason="key refused")

        result = pilot("connector", "test", connector)

    assert result.exit_code == 0, result.output
    with factory() as session:
        row = store.get_connector(session, connector)
        assert (row.status, row.last_error) == (ConnectorStatus.ACTIVE, None)
    engine.dispose()
