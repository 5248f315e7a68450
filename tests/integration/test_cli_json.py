"""`--json` on every list, show, status and usage command, and `--wide`: full ids, every field."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import ConnectorUsage, EmailMessage, MessageStatus
from shared.sending.rendering import message_id_for
from shared.settings import load_settings
from tests.integration.conftest import Pilot
from tests.rollup_helpers import add_rollups

pytestmark = pytest.mark.integration


def org_and_connector(pilot: Pilot) -> tuple[str, str]:
    org = pilot("org", "create", "Acme").output.strip()
    connector = pilot(
        "connector", "add", "--org", org, "--name", "main", "--from", "News <news@acme.test>",
        "--per-hour", "50", "--per-day", "500", "--api-key", "re_json_canary_key",
    ).output.strip()  # fmt: skip
    return org, connector


def json_of(pilot: Pilot, *args: str) -> object:
    result = pilot(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_org_list_shows_every_organization_with_its_connector_count(pilot: Pilot) -> None:
    org, _ = org_and_connector(pilot)
    other = pilot("org", "create", "Globex").output.strip()

    listed = json_of(pilot, "org", "list")

    assert [(o["id"], o["name"], o["connectors"]) for o in listed] == [(org, "Acme", 1), (other, "Globex", 0)]


def test_connector_list_json_has_full_ids_and_limits_but_never_the_key(pilot: Pilot) -> None:
    org, connector = org_and_connector(pilot)

    result = pilot("connector", "list", "--json")
    [listed] = json.loads(result.output)

    assert listed["id"] == connector and listed["organization_id"] == org
    assert (listed["rate_limit_per_hour"], listed["rate_limit_per_day"]) == (50, 500)
    assert listed["api_key_set"] is True
    assert "re_json_canary_key" not in result.output


def test_connector_show_json_is_the_record_of_list(pilot: Pilot) -> None:
    _, connector = org_and_connector(pilot)

    assert json_of(pilot, "connector", "show", connector) == json_of(pilot, "connector", "list")[0]


def test_status_json_has_connectors_waiting_rows_recent_sends_and_webhook_events(pilot: Pilot) -> None:
    _, connector = org_and_connector(pilot)

    status = json_of(pilot, "status")

    assert [c["id"] for c in status["connectors"]] == [connector]
    assert status["ledger"] == {}
    assert status["sent_last_24_hours"] == {"emails": 0, "requests": 0}
    assert status["webhook_events"] == {"waiting": 0, "orphaned": 0}
    assert (status["ledger_last_7_days"]["emails"], status["ledger_last_7_days"]["rolled_up_at"]) == (0, None)


def test_status_json_counts_waiting_rows_by_class_and_the_last_days_sends(
    pilot: Pilot, fresh_database_url: str
) -> None:
    org, connector = org_and_connector(pilot)
    engine = make_engine(load_settings(database_url=fresh_database_url))
    this_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with transaction(make_sessionmaker(engine)) as session:
        for key, status in (("a", "queued"), ("b", "queued"), ("c", "delivered")):
            session.add(
                EmailMessage(
                    id=message_id_for(key),
                    organization_id=uuid.UUID(org),
                    connector_id=uuid.UUID(connector),
                    idempotency_key=key,
                    recipient="ann@example.test",
                    status=status,
                )
            )
        usage = ConnectorUsage(connector_id=uuid.UUID(connector), hour=this_hour, emails_sent=3, requests=1)
        session.add(usage)
    engine.dispose()

    status = json_of(pilot, "status")

    assert status["ledger"] == {"queued": {"total": 2, "bulk": 2}}
    assert status["sent_last_24_hours"] == {"emails": 3, "requests": 1}


def test_status_json_totals_the_rollups_of_the_last_7_whole_days_by_status(
    pilot: Pilot, fresh_database_url: str
) -> None:
    org, connector = org_and_connector(pilot)
    today = datetime.now(UTC).date()
    add_rollups(
        fresh_database_url,
        org,
        connector,
        {
            today - timedelta(days=8): {MessageStatus.DELIVERED: 1000},
            today - timedelta(days=7): {MessageStatus.DELIVERED: 40, MessageStatus.BOUNCED: 2},
            today - timedelta(days=1): {MessageStatus.DELIVERED: 50, MessageStatus.SENT: 3},
            today: {MessageStatus.DELIVERED: 1000},
        },
    )

    totals = json_of(pilot, "status")["ledger_last_7_days"]

    assert (totals["from"], totals["to"]) == (str(today - timedelta(days=7)), str(today - timedelta(days=1)))
    assert totals["by_status"] == {"sent": 3, "delivered": 90, "bounced": 2}
    assert totals["emails"] == 95
    assert datetime.fromisoformat(totals["rolled_up_at"]) <= datetime.now(UTC)


def test_usage_json_has_both_windows(pilot: Pilot) -> None:
    _, connector = org_and_connector(pilot)

    usage = json_of(pilot, "usage", connector)

    assert usage["connector_id"] == connector
    assert [(w["window"], w["used"], w["limit"]) for w in usage["windows"]] == [
        ("hour", 0, 50),
        ("day", 0, 500),
    ]
    assert usage["last_24_hours"] == []


def test_suppression_list_json_has_every_field(pilot: Pilot) -> None:
    org, _ = org_and_connector(pilot)
    pilot("suppression", "add", "--org", org, "gone@example.com", "--expires-at", "2099-01-01T00:00:00Z")

    [entry] = json_of(pilot, "suppression", "list", "--org", org)

    assert (entry["email"], entry["reason"], entry["source"]) == ("gone@example.com", "manual", "manual")
    assert entry["expires_at"] == "2099-01-01T00:00:00+00:00"


def test_dead_letters_list_json_is_empty_when_there_are_none(pilot: Pilot) -> None:
    assert json_of(pilot, "dead-letters", "list") == []


@pytest.mark.parametrize("args", [("connector", "list"), ("status",)])
def test_wide_shows_full_connector_ids_in_an_80_column_terminal(
    pilot: Pilot, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    _, connector = org_and_connector(pilot)

    assert connector in pilot(*args, "--wide").output


def test_wide_shows_full_organization_ids_in_an_80_column_terminal(
    pilot: Pilot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    org, _ = org_and_connector(pilot)

    assert org in pilot("org", "list", "--wide").output
