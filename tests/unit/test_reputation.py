"""The reputation guard's pure rules: a row's contribution, the state a window calls for, the metrics."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY

from marketing_pilot_client import OutcomeKind
from shared.models import ReputationScope, ReputationState, ReputationStatus
from shared.reputation import events
from shared.reputation.counting import Contribution, campaign_slice, contribution
from shared.reputation.guard import Evaluation, Window, level
from shared.reputation.policy import Thresholds, defaults, problems_of
from shared.settings import load_settings
from worker import metrics

THRESHOLDS = Thresholds(0.04, 0.08, 0.0008, 0.003, 200)


def test_a_hard_bounce_counts_the_recipient_and_the_bounce() -> None:
    assert contribution([("sent", None), ("bounced", "Permanent")]) == Contribution(True, True, False)


def test_a_soft_bounce_counts_the_recipient_only() -> None:
    assert contribution([("bounced", "Transient")]) == Contribution(True, False, False)


def test_a_complaint_counts_whatever_arrived_before_it() -> None:
    assert contribution([("complained", None)]) == contribution([("delivered", None), ("complained", None)])


def test_sent_opened_and_clicked_count_nothing() -> None:
    assert contribution([("sent", None), ("opened", None), ("clicked", None)]) == Contribution()


@pytest.mark.parametrize(
    ("window", "state"),
    [
        (Window(199, 100, 100), ReputationState.OK),  # below the minimum volume
        (Window(200, 7, 0), ReputationState.OK),
        (Window(200, 8, 0), ReputationState.WARNING),
        (Window(200, 16, 0), ReputationState.PAUSED),
        (Window(10_000, 0, 8), ReputationState.WARNING),
        (Window(10_000, 0, 30), ReputationState.PAUSED),
    ],
)
def test_the_state_a_window_calls_for(window: Window, state: ReputationState) -> None:
    assert level(window, THRESHOLDS)[0] is state


def test_the_reason_names_the_rate_the_volume_and_the_level() -> None:
    assert (
        level(Window(200, 30, 0), THRESHOLDS)[1]
        == "hard bounces 15.00 % of 200 recipients (at 8.00 %: paused)"
    )


def test_an_organization_may_not_pause_later_than_the_operator_allows() -> None:
    settings = load_settings()
    wanted = Thresholds(0.04, 0.2, 0.0008, 0.003, 10)

    assert problems_of(wanted, settings) == {
        "pause_bounce_rate": "the operator allows at most 0.1",
        "min_volume": "the operator requires at least 50",
    }
    assert problems_of(defaults(settings), settings) == {}


def test_observe_reputation_sets_the_rates_and_counts_a_change() -> None:
    org = uuid.uuid4()
    judged = Evaluation(
        ReputationScope.ORGANIZATION,
        org,
        org,
        Window(200, 20, 1),
        ReputationState.OK,
        ReputationState.PAUSED,
        "x",
    )
    changes = {"scope": "organization", "state": "paused"}
    before = REGISTRY.get_sample_value("pilot_reputation_state_changes_total", changes) or 0.0

    metrics.observe_reputation([judged])

    labels = {"scope": "organization", "scope_id": str(org)}
    assert REGISTRY.get_sample_value("pilot_reputation_rate", {**labels, "kind": "bounce"}) == 0.1
    assert REGISTRY.get_sample_value("pilot_reputation_rate", {**labels, "kind": "complaint"}) == 0.005
    assert REGISTRY.get_sample_value("pilot_reputation_state_changes_total", changes) == before + 1


def test_campaign_recipients_fill_slices_of_a_hundred_in_counting_order() -> None:
    assert [campaign_slice(n) for n in (0, 99, 100, 199, 1000)] == [1, 1, 2, 2, 11]


def test_a_scope_tells_the_latest_queues_its_rows_named_at_most_sixteen() -> None:
    status = ReputationStatus(outcome_queues=["shop.outcomes"])

    events.remember_queues(status, [f"app{n:02d}.outcomes" for n in range(20)] + ["shop.outcomes"])

    assert len(status.outcome_queues) == events.MAX_QUEUES
    assert status.outcome_queues[-1] == "app19.outcomes" and "shop.outcomes" not in status.outcome_queues


def test_every_guard_state_is_told_as_its_own_outcome_kind() -> None:
    assert {kind.value for kind in events.KIND_OF.values()} | {"reputation_resumed"} == {
        kind.value for kind in OutcomeKind if kind.startswith("reputation_")
    }
