"""`pilot send`, `cancel`, `usage`, `status`, `events replay` and `connector test` against real services."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from marketing_pilot_client.fields import MAX_ATTACHMENT_BYTES
from shared import connector_store as store
from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import ConnectorStatus, EmailMessage, MessageStatus, WebhookEvent
from shared.settings import get_settings, load_settings
from tests.integration.conftest import Pilot
from tests.rollup_helpers import add_rollups
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
        (
            ("--to", "a@example.com", "--subject", "Hi", "--text", "x", "--scheduled-at", "2026-12-08T09:00"),
            "scheduled_at",
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


def test_send_enqueues_the_scheduled_time_and_each_attached_file(
    pilot: Pilot, isolated_redis_url: str, tmp_path: Path
) -> None:
    connector = new_connector(pilot)
    invoice = tmp_path / "invoice.pdf"
    invoice.write_bytes(b"%PDF-1.7 \x00\xff")
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()

    result = pilot(
        "send", "--connector", connector, "--to", "a@example.com", "--subject", "Hi", "--text", "x",
        "--scheduled-at", at, "--attach", str(invoice),
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    [message] = queued_messages(isolated_redis_url, "pilot.sends.priority")
    _, kwargs, _ = json.loads(base64.b64decode(str(message["body"])))
    assert kwargs["scheduled_at"] == at
    assert kwargs["attachments"] == [
        {
            "filename": "invoice.pdf",
            "content": base64.b64encode(invoice.read_bytes()).decode(),
            "content_type": "application/pdf",
        }
    ]


def test_send_enqueues_each_inline_image_with_its_content_id(
    pilot: Pilot, isolated_redis_url: str, tmp_path: Path
) -> None:
    connector = new_connector(pilot)
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"\x89PNG\r\n\x1a\n")

    result = pilot(
        "send", "--connector", connector, "--to", "a@example.com", "--subject", "Hi",
        "--html", '<img src="cid:logo">', "--inline", str(logo), "logo",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    [message] = queued_messages(isolated_redis_url, "pilot.sends.priority")
    _, kwargs, _ = json.loads(base64.b64decode(str(message["body"])))
    assert kwargs["attachments"] == [
        {
            "filename": "logo.png",
            "content": base64.b64encode(logo.read_bytes()).decode(),
            "content_type": "image/png",
            "content_id": "logo",
        }
    ]


def test_send_refuses_inline_images_beyond_what_the_worker_takes_before_enqueueing(
    pilot: Pilot, isolated_redis_url: str, tmp_path: Path
) -> None:
    connector = new_connector(pilot)
    banner = tmp_path / "banner.png"
    banner.write_bytes(bytes(MAX_ATTACHMENT_BYTES * 3 // 4 + 3))  # base64 is 4 bytes over the limit

    result = pilot(
        "send", "--connector", connector, "--to", "a@example.com", "--subject", "Hi",
        "--html", '<img src="cid:banner">', "--inline", str(banner), "banner",
    )  # fmt: skip

    assert result.exit_code == 1
    assert "not enqueued" in result.output and "Resend takes at most 41943040 per email" in result.output
    assert queued_messages(isolated_redis_url, "pilot.sends.priority") == []


def scheduled_row(database_url: str, connector: str, key: str) -> uuid.UUID:
    """A ``scheduled`` ledger row of ``connector`` sent under the caller's ``key``."""
    engine = make_engine(load_settings(database_url=database_url))
    with transaction(make_sessionmaker(engine)) as session:
        found = store.get_connector(session, connector)
        row = EmailMessage(
            organization_id=found.organization_id,
            connector_id=found.id,
            idempotency_key=f"{key}/{uuid.uuid4().hex[:16]}",
            recipient="ada@example.com",
            status=MessageStatus.SCHEDULED,
            next_attempt_at=datetime.now(UTC) + timedelta(hours=1),
        )
        session.add(row)
        session.flush()
        row_id = row.id
    engine.dispose()
    return row_id


def test_cancel_json_answers_each_row(pilot: Pilot, fresh_database_url: str) -> None:
    connector = new_connector(pilot)
    row_id = scheduled_row(fresh_database_url, connector, "campaign/7")

    result = pilot("cancel", "--connector", connector, "--idempotency-key", "campaign/7", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "counts": {"cancelled": 1},
        "results": [
            {
                "message_id": str(row_id),
                "recipient": "ada@example.com",
                "answer": "cancelled",
                "status": "cancelled",
            }
        ],
    }


def test_cancel_of_a_cancelled_send_answers_already_cancelled(pilot: Pilot, fresh_database_url: str) -> None:
    connector = new_connector(pilot)
    row_id = str(scheduled_row(fresh_database_url, connector, "campaign/8"))
    pilot("cancel", row_id)

    result = pilot("cancel", row_id)

    assert result.exit_code == 0, result.output
    assert "already_cancelled: 1" in result.output


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


def test_status_shows_the_last_7_days_emails_by_status_from_the_rollups(
    pilot: Pilot, fresh_database_url: str
) -> None:
    connector = new_connector(pilot)
    org = json.loads(pilot("connector", "show", connector, "--json").output)["organization_id"]
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    counts = {MessageStatus.DELIVERED: 41, MessageStatus.FAILED: 1}
    add_rollups(fresh_database_url, org, connector, {yesterday: counts})

    result = pilot("status")

    assert result.exit_code == 0, result.output
    words = " ".join(result.output.replace("│", " ").split())
    assert "Last 7 days: emails by status" in words and "delivered 41 failed 1 total 42" in words
    assert f"to {yesterday} (UTC), from the nightly ledger rollups (last rewritten" in words


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
