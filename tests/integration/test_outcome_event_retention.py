"""The outbox's daily partitions (shared.partitions, OUTCOME_EVENTS) on the real PostgreSQL: made ahead,
a day dropped once its events were published long enough ago, held while one of them is unpublished;
the publisher, erasure and the writers' one-event-per-change still see every partition."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from shared.db import make_engine, make_sessionmaker, transaction
from shared.erasure import erase
from shared.models import EmailMessage, MessageStatus
from shared.outcome_publisher import publish_pending
from shared.partitions.maintenance import maintain
from shared.partitions.periods import Grain
from shared.partitions.tables import OUTCOME_EVENTS, TABLES
from shared.settings import Settings, load_settings
from tests.send_helpers import add_connector

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
DAY = timedelta(days=1)
#: Today's partition of the outbox, and a run as of ten days on: past the default retention of 7 days.
TODAY = OUTCOME_EVENTS.partition(Grain.DAY.start_of(NOW))
LATER = NOW + 10 * DAY


@pytest.fixture
def settings(fresh_database_url: str) -> Settings:
    return load_settings(database_url=fresh_database_url)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings)
    yield engine
    engine.dispose()


class RecordingSender:
    """A Celery app's ``send_task``, recorded."""

    def __init__(self) -> None:
        self.task_ids: list[str] = []

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        self.task_ids.append(str(options["task_id"]))
        return None


def add_message(engine: Engine, recipient: str = "ada@x.test") -> tuple[uuid.UUID, uuid.UUID]:
    """A ledger row naming an outcomes queue (its trigger writes a ``queued`` event): its organization
    and id."""
    factory = make_sessionmaker(engine)
    organization, connector = add_connector(factory)
    with transaction(factory) as session:
        row = EmailMessage(
            organization_id=organization,
            connector_id=connector,
            idempotency_key=f"outbox/{uuid.uuid4().hex}",
            recipient=recipient,
            status=MessageStatus.QUEUED,
            outcomes_queue="shop.outcomes",
        )
        session.add(row)
        session.flush()
        return organization, row.id


def add_event(
    engine: Engine, message_id: uuid.UUID, created_at: datetime, published_at: datetime | None
) -> str:
    """An outcome event of ``message_id`` written at ``created_at``: its id."""
    with engine.begin() as connection:
        return str(
            connection.execute(
                text(
                    "INSERT INTO outcome_events (id, message_id, queue, kind, created_at, published_at)"
                    " VALUES (gen_random_uuid(), :message, 'shop.outcomes', 'sent', :created, :published)"
                    " RETURNING id"
                ),
                {"message": message_id, "created": created_at, "published": published_at},
            ).scalar_one()
        )


def publish_all(engine: Engine, published_at: datetime) -> None:
    with engine.begin() as connection:
        connection.execute(text("UPDATE outcome_events SET published_at = :at"), {"at": published_at})


def exists(engine: Engine, partition: str) -> bool:
    with engine.connect() as connection:
        return bool(connection.scalar(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": partition}))


def test_the_outbox_is_a_table_maintenance_visits_by_day_of_writing() -> None:
    assert OUTCOME_EVENTS in TABLES
    assert (OUTCOME_EVENTS.column, OUTCOME_EVENTS.grain) == ("created_at", Grain.DAY)


def test_maintenance_creates_the_outbox_days_ahead(engine: Engine, settings: Settings) -> None:
    maintain(engine, settings, now=LATER, tables=[OUTCOME_EVENTS])

    ahead = [OUTCOME_EVENTS.partition_name(Grain.DAY.start_of(LATER + n * DAY)) for n in range(4)]
    assert all(exists(engine, name) for name in ahead)


def test_a_day_of_events_published_past_retention_is_dropped(engine: Engine, settings: Settings) -> None:
    add_message(engine)
    publish_all(engine, published_at=NOW)

    report = maintain(engine, settings, now=LATER, tables=[OUTCOME_EVENTS])

    assert TODAY.name in report.dropped
    assert not exists(engine, TODAY.name)


def test_a_day_holding_an_unpublished_event_is_held(engine: Engine, settings: Settings) -> None:
    _, message = add_message(engine)
    publish_all(engine, published_at=NOW)
    add_event(engine, message, created_at=NOW, published_at=None)

    report = maintain(engine, settings, now=LATER, tables=[OUTCOME_EVENTS])

    assert TODAY.name in report.held
    assert exists(engine, TODAY.name)


def test_a_day_whose_events_were_published_within_retention_is_kept(
    engine: Engine, settings: Settings
) -> None:
    # Retention counts from publishing: events that waited for the broker stay their full week.
    add_message(engine)
    publish_all(engine, published_at=LATER - DAY)

    report = maintain(engine, settings, now=LATER, tables=[OUTCOME_EVENTS])

    assert TODAY.name in report.held
    assert exists(engine, TODAY.name)


def test_the_publisher_publishes_from_every_partition(engine: Engine) -> None:
    _, message = add_message(engine)
    written = [
        add_event(engine, message, created_at=at, published_at=None)
        for at in (NOW - 30 * DAY, NOW - DAY, NOW + DAY, NOW + 60 * DAY)
    ]
    sender = RecordingSender()

    published = publish_pending(make_sessionmaker(engine), sender)

    assert published == len(written) + 1  # and the row's own queued event
    assert set(written) <= set(sender.task_ids)
    with engine.connect() as connection:
        waiting = connection.scalar(text("SELECT count(*) FROM outcome_events WHERE published_at IS NULL"))
        partitions = connection.scalar(text("SELECT count(DISTINCT tableoid) FROM outcome_events"))
    assert waiting == 0
    assert partitions == 3  # today, tomorrow, and the default (the other days have no partition)


def test_erasure_finds_the_outcome_events_of_every_partition(engine: Engine) -> None:
    organization, message = add_message(engine, recipient="ada@x.test")
    add_event(engine, message, created_at=NOW + DAY, published_at=None)
    add_event(engine, message, created_at=NOW - 30 * DAY, published_at=None)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE email_messages SET status = 'failed' WHERE id = :id"), {"id": message}
        )

    with transaction(make_sessionmaker(engine)) as session:
        report = erase(session, organization, "ada@x.test", actor="test", now=NOW)

    assert report.outcome_events == 4  # queued, failed, and the two written on other days
    with engine.connect() as connection:
        left = connection.scalar(
            text("SELECT count(*) FROM outcome_events WHERE message_id = :id"), {"id": message}
        )
    assert left == 0


def test_a_status_change_written_again_on_another_day_writes_no_second_event(engine: Engine) -> None:
    _, message = add_message(engine)
    with engine.begin() as connection:
        # The queued event was written yesterday; the row leaves for sending and comes back unsent.
        connection.execute(text("UPDATE outcome_events SET created_at = created_at - interval '1 day'"))
        connection.execute(text("UPDATE email_messages SET created_at = created_at - interval '1 day'"))
        connection.execute(
            text("UPDATE email_messages SET status = 'sending' WHERE id = :id"), {"id": message}
        )
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE email_messages SET status = 'queued' WHERE id = :id"), {"id": message}
        )

    with engine.connect() as connection:
        events = connection.execute(text("SELECT kind, count(*) FROM outcome_events GROUP BY kind")).all()
    assert events == [("queued", 1)]
