"""``pilot ledger roll-up``: the rollups of chosen days rewritten from the ledger, as beat does nightly."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, time, timedelta

import pytest

from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import EmailMessage, MessageStatus
from shared.settings import load_settings
from tests.integration.conftest import Pilot

pytestmark = pytest.mark.integration


def org_and_connector(pilot: Pilot) -> tuple[str, str]:
    org = pilot("org", "create", "Acme").output.strip()
    connector = pilot("connector", "add", "--org", org, "--name", "main", "--from", "a@acme.test").output
    return org, connector.strip()


def add_row(database_url: str, org: str, connector: str, status: MessageStatus, created_at: datetime) -> None:
    engine = make_engine(load_settings(database_url=database_url))
    with transaction(make_sessionmaker(engine)) as session:
        session.add(
            EmailMessage(
                organization_id=uuid.UUID(org),
                connector_id=uuid.UUID(connector),
                idempotency_key=f"cli/{uuid.uuid4()}",
                recipient="ann@example.test",
                status=status,
                created_at=created_at,
            )
        )
    engine.dispose()


def test_roll_up_rewrites_the_days_asked_and_status_then_counts_them(
    pilot: Pilot, fresh_database_url: str
) -> None:
    org, connector = org_and_connector(pilot)
    three_days_ago = datetime.now(UTC).date() - timedelta(days=3)
    for status in (MessageStatus.DELIVERED, MessageStatus.DELIVERED, MessageStatus.BOUNCED):
        moment = datetime.combine(three_days_ago, time(12), tzinfo=UTC)
        add_row(fresh_database_url, org, connector, status, moment)

    result = pilot("ledger", "roll-up", "--from", str(three_days_ago), "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rolled_up"] == [
        str(three_days_ago + timedelta(days=n)) for n in range(3)
    ]
    status = json.loads(pilot("status", "--json").output)["ledger_last_7_days"]
    assert status["by_status"] == {"delivered": 2, "bounced": 1}


def test_roll_up_refuses_a_first_day_after_the_last(pilot: Pilot) -> None:
    result = pilot("ledger", "roll-up", "--from", "2026-11-05", "--to", "2026-11-04")

    assert result.exit_code == 1
    assert "--from 2026-11-05 is after --to 2026-11-04" in result.output
