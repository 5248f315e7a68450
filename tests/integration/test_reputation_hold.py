"""A paused organization's bulk rows wait at dispatch; its transactional mail and other organizations
on the same API key do not; a resume sends what waited exactly once (real PostgreSQL, a fake Resend)."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from shared.models import MessageStatus, Priority
from shared.reputation import guard
from shared.sending import pipeline
from tests.reputation_helpers import apply, guard_audit, outcome_payloads, sent_messages, state_of
from tests.send_helpers import add_connector, batch_payload, rows, send_payload, sends

pytestmark = pytest.mark.integration

Factory = sessionmaker[Session]


def pause(factory: Factory, org: uuid.UUID, connector: uuid.UUID) -> None:
    """Pause ``org`` the way the guard does: a campaign whose hard bounces cross the pause level."""
    _, email_ids = sent_messages(factory, org, connector, 200)
    apply(factory, outcome_payloads(email_ids, hard=30))
    assert state_of(factory, org) == "paused"


def recipients_sent(resend) -> Counter[str]:
    return Counter(to for request in sends(resend) for email in _emails(request) for to in email["to"])


def _emails(request):
    body = json.loads(request.content)
    return body if isinstance(body, list) else [body]


def statuses(factory: Factory, connector: uuid.UUID, prefix: str) -> Counter[str]:
    return Counter(row.status for row in rows(factory, connector) if row.recipient.startswith(prefix))


def test_a_paused_organizations_bulk_rows_wait_deferred_with_the_reason(
    ctx, resend, factory, key_hash
) -> None:
    org, connector = add_connector(factory)
    pause(factory, org, connector)

    pipeline.send_batch(
        ctx, batch_payload(connector, [f"news{n}@example.test" for n in range(30)]), task_ref="c1"
    )

    held = [row for row in rows(factory, connector) if row.recipient.startswith("news")]
    assert {row.status for row in held} == {MessageStatus.DEFERRED}
    assert all(
        row.last_error.startswith(guard.HOLD_PREFIX) and "hard bounces" in row.last_error for row in held
    )
    assert recipients_sent(resend) == Counter()


def test_bulk_rows_queued_before_the_pause_wait_at_dispatch(ctx, resend, factory, key_hash) -> None:
    org, connector = add_connector(factory)
    queued = [f"queued{n}@example.test" for n in range(30)]
    pipeline.submit_batch(ctx, batch_payload(connector, queued), task_ref="before")  # recorded, not sent

    pause(factory, org, connector)
    pipeline.dispatch(ctx, key_hash)

    held = [row for row in rows(factory, connector) if row.recipient.startswith("queued")]
    assert {row.status for row in held} == {MessageStatus.DEFERRED}
    assert all(row.last_error.startswith(guard.HOLD_PREFIX) for row in held)
    assert recipients_sent(resend) == Counter()


def test_a_paused_organizations_transactional_mail_still_goes(ctx, resend, factory, key_hash) -> None:
    org, connector = add_connector(factory)
    pause(factory, org, connector)

    outcome = pipeline.send_email(ctx, send_payload(connector, "reset@example.test"), task_ref="reset")

    assert [result.status for result in outcome.results] == ["sent"]
    assert recipients_sent(resend) == Counter({"reset@example.test": 1})


def test_a_single_bulk_email_of_a_paused_organization_waits_too(ctx, resend, factory) -> None:
    org, connector = add_connector(factory)
    pause(factory, org, connector)

    payload = send_payload(connector, "digest@example.test", priority=Priority.BULK.value)
    outcome = pipeline.send_email(ctx, payload, task_ref="digest")

    assert [result.status for result in outcome.results] == ["deferred"]
    assert recipients_sent(resend) == Counter()


def test_another_organization_on_the_same_api_key_is_untouched(ctx, resend, factory, key_hash) -> None:
    bad_org, bad_connector = add_connector(factory)
    _, good_connector = add_connector(factory)
    pause(factory, bad_org, bad_connector)

    pipeline.send_batch(
        ctx, batch_payload(bad_connector, [f"bad{n}@example.test" for n in range(20)]), task_ref="b"
    )
    pipeline.send_batch(
        ctx, batch_payload(good_connector, [f"good{n}@example.test" for n in range(20)]), task_ref="g"
    )
    pipeline.dispatch(ctx, key_hash)

    assert statuses(factory, good_connector, "good") == Counter({"sent": 20})
    assert statuses(factory, bad_connector, "bad") == Counter({"deferred": 20})


def test_resume_sends_every_waiting_row_exactly_once_and_is_audited(ctx, resend, factory, key_hash) -> None:
    org, connector = add_connector(factory)
    pause(factory, org, connector)
    waiting = [f"wait{n}@example.test" for n in range(150)]
    pipeline.send_batch(ctx, batch_payload(connector, waiting), task_ref="held")

    with transaction(factory) as session:
        resumed = guard.resume(session, org, actor="ops", now=ctx.clock())
    for _ in range(3):
        pipeline.dispatch(ctx, key_hash)
        pipeline.dispatch(ctx, key_hash)

    assert resumed.released == 150
    assert state_of(factory, org) == "ok"
    assert statuses(factory, connector, "wait") == Counter({"sent": 150})
    assert recipients_sent(resend) == Counter({address: 1 for address in waiting})
    assert guard_audit(factory, org)[-1] == "reputation.resume"


def test_rows_held_at_a_resume_are_not_held_again_but_later_sends_are_judged_afresh(
    ctx, resend, factory, key_hash
) -> None:
    org, connector = add_connector(factory)
    pause(factory, org, connector)
    pipeline.send_batch(
        ctx, batch_payload(connector, [f"old{n}@example.test" for n in range(10)]), task_ref="o"
    )
    with transaction(factory) as session:
        guard.resume(session, org, actor="ops", now=ctx.clock())

    # The list is still bad: 200 more recipients counted after the resume pause the organization again.
    pause(factory, org, connector)
    pipeline.send_batch(
        ctx, batch_payload(connector, [f"new{n}@example.test" for n in range(10)]), task_ref="n"
    )
    pipeline.dispatch(ctx, key_hash)

    assert statuses(factory, connector, "old") == Counter({"sent": 10})
    assert statuses(factory, connector, "new") == Counter({"deferred": 10})


def test_after_a_resume_the_rates_start_afresh(ctx, factory) -> None:
    org, connector = add_connector(factory)
    pause(factory, org, connector)
    with transaction(factory) as session:
        guard.resume(session, org, actor="ops", now=ctx.clock())

    _, email_ids = sent_messages(factory, org, connector, 100)
    apply(factory, outcome_payloads(email_ids, hard=10))

    assert state_of(factory, org) == "ok"  # 100 recipients since the resume: below the minimum volume
