"""``pilot reputation``: the report (table and --json), ``resume --org`` and ``set``."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from tests.integration.conftest import Pilot
from tests.reputation_helpers import apply, guard_audit, outcome_payloads, sent_messages, state_of
from tests.webhook_factories import make_organization

pytestmark = pytest.mark.integration


def paused_organization(factory: sessionmaker[Session]):
    with transaction(factory) as session:
        org, connector = make_organization(session)
    _, email_ids = sent_messages(factory, org, connector, 200)
    apply(factory, outcome_payloads(email_ids, hard=20, complained=1))
    return org, connector


def test_reputation_json_shows_rates_state_thresholds_and_history(pilot: Pilot, session_factory) -> None:
    org, _ = paused_organization(session_factory)

    result = pilot("reputation", "--json")

    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.output)
    assert entry["organization_id"] == str(org)
    assert entry["state"] == "paused"
    assert entry["rates"]["recipients"] == 200
    assert (entry["rates"]["hard_bounces"], entry["rates"]["complaints"]) == (20, 1)
    assert entry["thresholds"]["pause_bounce_rate"] == 0.08
    assert {scope["scope"] for scope in entry["scopes"]} == {"organization", "connector", "campaign"}
    assert {event["action"] for event in entry["history"]} == {"reputation.pause"}


def test_reputation_table_names_each_scope_and_its_state(pilot: Pilot, session_factory) -> None:
    org, _ = paused_organization(session_factory)

    result = pilot("reputation")

    assert result.exit_code == 0, result.output
    assert str(org) in result.output and "paused" in result.output


def test_reputation_json_names_the_campaign_window(pilot: Pilot, session_factory) -> None:
    paused_organization(session_factory)

    result = pilot("reputation", "--json")

    [entry] = json.loads(result.output)
    assert (entry["window_days"], entry["campaign_window"]) == (7, 1000)


def test_resume_lifts_the_pause_and_is_audited(pilot: Pilot, session_factory) -> None:
    org, _ = paused_organization(session_factory)

    result = pilot("reputation", "resume", "--org", str(org), "--reason", "list cleaned", "--actor", "ops")

    assert result.exit_code == 0, result.output
    assert "resumed 3 paused scope(s)" in result.output
    assert state_of(session_factory, org) == "ok"
    assert guard_audit(session_factory, org)[-1] == "reputation.resume"


def test_resume_of_an_unknown_organization_is_one_clear_line(pilot: Pilot) -> None:
    result = pilot("reputation", "resume", "--org", "not-a-uuid")

    assert result.exit_code == 1
    assert "--org: expected an organization id" in result.output


def test_set_refuses_a_pause_level_beyond_the_operators_limit_naming_it(
    pilot: Pilot, session_factory
) -> None:
    with transaction(session_factory) as session:
        org, _ = make_organization(session)

    result = pilot("reputation", "set", "--org", str(org), "--pause-bounce", "0.2")

    assert result.exit_code == 1
    assert "pause_bounce_rate: the operator allows at most 0.1" in result.output


def test_set_an_organizations_own_thresholds_is_what_the_guard_judges_by(
    pilot: Pilot, session_factory
) -> None:
    with transaction(session_factory) as session:
        org, connector = make_organization(session)
    assert pilot("reputation", "set", "--org", str(org), "--min-volume", "100").exit_code == 0

    _, email_ids = sent_messages(session_factory, org, connector, 100)
    apply(session_factory, outcome_payloads(email_ids, hard=9))

    assert state_of(session_factory, org) == "paused"
