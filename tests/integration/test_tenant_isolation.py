"""Tenants never meet: every caller-supplied value is scoped to its organization and connector.

Two organizations, each with its own connector, on one database and one (fake) Resend account: what
one of them sends, names or suppresses never reads, sends or answers anything of the other.
"""

from __future__ import annotations

import json
import uuid

import pytest

from shared.sending import pipeline as sending
from tests.fake_resend import error_body
from tests.send_helpers import add_connector, add_suppressions, add_task, rows, send_payload, sends

pytestmark = pytest.mark.integration

#: One recipient goes the single-recipient path, two the general one: both must keep tenants apart.
RECIPIENTS = {"one recipient": ["x@example.test"], "two recipients": ["x@example.test", "y@example.test"]}


@pytest.fixture
def key() -> str:
    """A caller's idempotency key no other test of the module's database uses."""
    return f"invoice/{uuid.uuid4().hex[:8]}"


@pytest.fixture
def org_a(factory):
    return add_connector(factory, default_from="Org A <news@a.example>")


@pytest.fixture
def org_b(factory):
    return add_connector(factory, default_from="Org B <news@b.example>")


@pytest.mark.parametrize("to", RECIPIENTS.values(), ids=RECIPIENTS.keys())
def test_same_idempotency_key_in_two_organizations_sends_each_its_own_email(
    ctx, resend, factory, org_a, org_b, to, key
) -> None:
    (_, a), (_, b) = org_a, org_b
    key = {"idempotency_key": key}

    first = sending.send_email(ctx, send_payload(a, to, subject="A order confirmation", **key), task_ref="ta")
    second = sending.send_email(
        ctx, send_payload(b, to, subject="B order confirmation", **key), task_ref="tb"
    )

    assert first.counts() == second.counts() == {"sent": len(to)}
    assert [row.status for row in rows(factory, b)] == ["sent"] * len(to)
    a_ids = {(r.resend_id, r.message_id) for r in first.results}
    b_ids = {(r.resend_id, r.message_id) for r in second.results}
    assert not a_ids & b_ids
    subjects = [item["subject"] for call in sends(resend) for item in _items(call)]
    assert sorted(subjects) == sorted(["A order confirmation"] * len(to) + ["B order confirmation"] * len(to))


@pytest.mark.parametrize("to", RECIPIENTS.values(), ids=RECIPIENTS.keys())
def test_same_idempotency_key_reaches_resend_under_two_keys(
    ctx, resend, factory, org_a, org_b, to, key
) -> None:
    (_, a), (_, b) = org_a, org_b

    sending.send_email(ctx, send_payload(a, to, idempotency_key=key), task_ref="ta")
    sending.send_email(ctx, send_payload(b, to, idempotency_key=key), task_ref="tb")

    first, second = sends(resend)
    assert first.headers["Idempotency-Key"] != second.headers["Idempotency-Key"]


def test_an_email_left_sending_is_never_sent_for_another_organization(
    ctx, resend, factory, org_a, org_b, key
) -> None:
    (_, a), (_, b) = org_a, org_b
    resend.reply(500, error_body(500, "internal_server_error", "boom"))
    key = {"idempotency_key": key}
    sending.send_email(
        ctx, send_payload(a, "x@example.test", subject="A order confirmation", **key), task_ref="ta"
    )
    [left] = rows(factory, a)
    assert left.status == "sending"

    sending.send_email(
        ctx,
        send_payload(b, ["x@example.test", "other@example.test"], subject="B order confirmation", **key),
        task_ref="tb",
    )

    later = [item for call in sends(resend)[1:] for item in _items(call)]
    assert {item["from"] for item in later} == {"Org B <news@b.example>"}
    assert {item["subject"] for item in later} == {"B order confirmation"}
    [still] = rows(factory, a)
    assert (still.status, still.attempts) == ("sending", 1)


def test_resume_never_sends_rows_of_another_connector(ctx, resend, factory, org_a, org_b) -> None:
    (_, a), (_, b) = org_a, org_b
    resend.reply(500, error_body(500, "internal_server_error", "boom"))
    sending.send_email(ctx, send_payload(a, "x@example.test"), task_ref="ta")
    [row] = rows(factory, a)

    outcome = sending.send_email(ctx, {"connector_id": str(b), "message_ids": [str(row.id)]}, task_ref="tb")

    assert outcome.results == [] and len(sends(resend)) == 1
    assert rows(factory, b) == []


def test_task_of_another_organization_is_refused(ctx, resend, factory, org_a, org_b) -> None:
    (a_org, _), (_, b) = org_a, org_b
    task_of_a = add_task(factory, a_org)

    outcome = sending.send_email(
        ctx, send_payload(b, "x@example.test", task_id=str(task_of_a)), task_ref="tb"
    )

    assert outcome.counts() == {"failed": 1}
    assert "task_id: the task belongs to another organization" in (outcome.results[0].reason or "")
    assert sends(resend) == []


def test_connector_of_another_organization_is_refused(ctx, resend, factory, org_a, org_b) -> None:
    (a_org, _), (_, b) = org_a, org_b

    outcome = sending.send_email(
        ctx, send_payload(b, "x@example.test", organization_id=str(a_org)), task_ref="tb"
    )

    assert outcome.counts() == {"failed": 1}
    assert "organization_id: the connector belongs to another organization" in (
        outcome.results[0].reason or ""
    )
    assert sends(resend) == []


def test_suppression_of_one_organization_does_not_stop_another(ctx, resend, factory, org_a, org_b) -> None:
    (a_org, _), (_, b) = org_a, org_b
    add_suppressions(factory, a_org, ["x@example.test"])

    outcome = sending.send_email(ctx, send_payload(b, "x@example.test"), task_ref="tb")

    assert outcome.counts() == {"sent": 1}


def test_invalid_payload_rows_of_two_organizations_stay_apart(ctx, resend, factory, org_a, org_b) -> None:
    (_, a), (_, b) = org_a, org_b
    bad = {"subjet": "typo"}

    sending.send_email(ctx, {**send_payload(a, "x@example.test"), **bad}, task_ref="same-celery-id")
    sending.send_email(ctx, {**send_payload(b, "x@example.test"), **bad}, task_ref="same-celery-id")

    assert [(row.status, row.recipient) for row in rows(factory, a)] == [("failed", "x@example.test")]
    assert [(row.status, row.recipient) for row in rows(factory, b)] == [("failed", "x@example.test")]


def _items(call) -> list[dict]:
    body = json.loads(call.content)
    return body if isinstance(body, list) else [body]
