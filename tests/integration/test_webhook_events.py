"""shared.webhook_events on the real PostgreSQL: counting stored events, choosing events to replay."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.errors import PayloadInvalid
from shared.models import WebhookEvent
from shared.webhook_events import EventCounts, event_backlog, event_counts, reopen_for_replay

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)


def stored(
    session: Session, svix_id: str, *, processed: bool = False, error: str | None = None
) -> WebhookEvent:
    event = WebhookEvent(
        svix_id=svix_id,
        type="email.sent",
        payload={},
        processed_at=NOW if processed else None,
        error=error,
        attempts=3 if error else 0,
    )
    session.add(event)
    session.flush()
    return event


def test_event_counts_tell_stored_waiting_and_orphaned_events(db_session: Session) -> None:
    before = event_counts(db_session)
    stored(db_session, "waiting")
    stored(db_session, "done", processed=True)
    stored(db_session, "orphan", processed=True, error="orphan: no ledger row")

    after = event_counts(db_session)

    assert (after.stored - before.stored, after.waiting - before.waiting) == (3, 1)
    assert after.orphaned - before.orphaned == 1


def test_event_backlog_tells_waiting_failing_and_orphaned_events_apart_from_processed_ones(
    db_session: Session,
) -> None:
    before = event_backlog(db_session)
    stored(db_session, "backlog-waiting")
    stored(db_session, "backlog-failing", error="database unavailable")
    stored(db_session, "backlog-done", processed=True)
    stored(db_session, "backlog-orphan", processed=True, error="orphan: no ledger row")

    after = event_backlog(db_session)

    assert (after.waiting - before.waiting, after.orphaned - before.orphaned) == (2, 1)


def test_waiting_events_are_the_stored_ones_not_processed() -> None:
    assert EventCounts(stored=5, processed=3, orphaned=1).waiting == 2


def test_replay_of_orphans_reopens_them_with_attempts_and_error_cleared(db_session: Session) -> None:
    orphan = stored(db_session, "orphan-a", processed=True, error="orphan: no ledger row")
    done = stored(db_session, "done-a", processed=True)

    ids = reopen_for_replay(db_session, event_ids=[str(orphan.id), str(done.id)], orphans=True)

    assert ids == [orphan.id]
    db_session.expire_all()
    row = db_session.scalars(select(WebhookEvent).where(WebhookEvent.id == orphan.id)).one()
    assert (row.processed_at, row.error, row.attempts) == (None, None, 0)
    assert db_session.get_one(WebhookEvent, done.id).processed_at == NOW


def test_replay_without_a_choice_is_refused(db_session: Session) -> None:
    with pytest.raises(PayloadInvalid, match="--orphans"):
        reopen_for_replay(db_session)


def test_replay_of_an_id_that_is_not_a_uuid_is_refused_naming_it(db_session: Session) -> None:
    with pytest.raises(PayloadInvalid, match="event ids must be UUIDs"):
        reopen_for_replay(db_session, event_ids=["msg_123"])
