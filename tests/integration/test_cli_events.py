"""`pilot events list` with its filters, and `--since` read as ISO 8601 with `Z` or an offset."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import WebhookEvent
from shared.settings import get_settings
from tests.integration.conftest import Pilot

pytestmark = pytest.mark.integration

EARLY = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
LATE = datetime(2026, 12, 5, 16, 0, tzinfo=UTC)


@pytest.fixture
def stored(pilot: Pilot) -> sessionmaker[Session]:
    """Four events in the CLI's database, one in each state, two early and two late."""
    engine = make_engine(get_settings(), pool_size=1)
    factory = make_sessionmaker(engine)
    with transaction(factory) as session:
        session.add_all(
            [
                WebhookEvent(svix_id="msg_done", type="email.delivered", payload={}, received_at=EARLY,
                             processed_at=EARLY),
                WebhookEvent(svix_id="msg_orphan", type="email.sent", payload={}, received_at=EARLY,
                             processed_at=EARLY, error="orphan: not in ledger"),
                WebhookEvent(svix_id="msg_waiting", type="email.bounced", payload={}, received_at=LATE),
                WebhookEvent(svix_id="msg_failing", type="email.bounced", payload={}, received_at=LATE,
                             attempts=3, error="OperationalError"),
            ]
        )  # fmt: skip
    yield factory
    engine.dispose()


def listed(pilot: Pilot, *args: str) -> list[tuple[str, str]]:
    result = pilot("events", "list", *args, "--json")
    assert result.exit_code == 0, result.output
    return sorted((event["svix_id"], event["state"]) for event in json.loads(result.output))


def test_events_list_shows_every_event_with_its_state(pilot: Pilot, stored: object) -> None:
    assert listed(pilot) == [
        ("msg_done", "processed"),
        ("msg_failing", "failing"),
        ("msg_orphan", "orphaned"),
        ("msg_waiting", "waiting"),
    ]


@pytest.mark.parametrize(
    ("state", "svix_id"),
    [
        ("processed", "msg_done"),
        ("orphaned", "msg_orphan"),
        ("waiting", "msg_waiting"),
        ("failing", "msg_failing"),
    ],
)
def test_events_list_filters_by_status(pilot: Pilot, stored: object, state: str, svix_id: str) -> None:
    assert listed(pilot, "--status", state) == [(svix_id, state)]


def test_events_list_filters_by_type(pilot: Pilot, stored: object) -> None:
    assert [svix_id for svix_id, _ in listed(pilot, "--type", "email.bounced")] == [
        "msg_failing",
        "msg_waiting",
    ]


@pytest.mark.parametrize("since", ["2026-12-05T14:00:00Z", "2026-12-05T15:00:00+01:00", "2026-12-05 14:00"])
def test_events_list_since_takes_z_an_offset_or_utc(pilot: Pilot, stored: object, since: str) -> None:
    assert [svix_id for svix_id, _ in listed(pilot, "--since", since)] == ["msg_failing", "msg_waiting"]


def test_events_list_table_shows_full_ids(
    pilot: Pilot, stored: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    ids = [event["id"] for event in json.loads(pilot("events", "list", "--json").output)]

    output = pilot("events", "list", "--wide").output

    assert all(event_id in output for event_id in ids)


def test_events_replay_since_takes_z(pilot: Pilot, stored: object) -> None:
    result = pilot("events", "replay", "--since", "2026-12-05T14:00:00Z")

    assert result.exit_code == 0, result.output
    assert "Replaying 2 event(s)" in result.output


def test_a_time_that_is_not_iso_8601_is_refused_naming_the_flag(pilot: Pilot) -> None:
    result = pilot("events", "list", "--since", "yesterday")

    assert result.exit_code == 2
    assert "'--since'" in result.output and "ISO 8601" in result.output
