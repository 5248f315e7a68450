"""webhook_receiver.group_writer and storage: many requests' events in one INSERT, one commit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, func, select

from shared.db import make_engine
from shared.errors import PayloadInvalid
from shared.models import WebhookEvent
from shared.settings import load_settings
from webhook_receiver.group_writer import GroupWriter, PendingRow, write_batch
from webhook_receiver.storage import autocommit, store_events

PAYLOAD = {"type": "email.sent", "data": {}}
UNSTORABLE = {"type": "email.sent", "data": {"s": "a\x00b"}}


@pytest.fixture
def engine(fresh_database_url: str) -> Iterator[Engine]:
    engine = make_engine(load_settings(database_url=fresh_database_url))
    yield autocommit(engine)
    engine.dispose()


def rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(WebhookEvent)) or 0


def pending(svix_id: str, payload: dict[str, object] = PAYLOAD) -> PendingRow:
    return PendingRow(svix_id, "email.sent", dict(payload), Future())


def test_store_events_inserts_copies_of_one_svix_id_once(engine: Engine) -> None:
    stored = store_events(engine, [("msg_a", "t", PAYLOAD), ("msg_a", "t", PAYLOAD), ("msg_b", "t", PAYLOAD)])
    assert sorted(stored) == ["msg_a", "msg_b"]
    assert rows(engine) == 2


def test_store_events_returns_nothing_for_stored_svix_ids(engine: Engine) -> None:
    store_events(engine, [("msg_a", "t", PAYLOAD)])
    assert store_events(engine, [("msg_a", "t", PAYLOAD)]) == {}


def test_write_batch_gives_the_id_to_the_first_copy_only(engine: Engine) -> None:
    batch = [pending("msg_a"), pending("msg_a"), pending("msg_b")]
    write_batch(engine, batch)
    results = [row.result.result() for row in batch]
    assert isinstance(results[0], uuid.UUID) and results[1] is None and isinstance(results[2], uuid.UUID)


def test_write_batch_one_unstorable_payload_fails_alone(engine: Engine) -> None:
    batch = [pending("msg_a"), pending("msg_bad", UNSTORABLE), pending("msg_c")]
    write_batch(engine, batch)
    with pytest.raises(PayloadInvalid):
        batch[1].result.result()
    assert batch[0].result.result() is not None and batch[2].result.result() is not None
    assert rows(engine) == 2


def test_group_writer_concurrent_copies_store_one_row(engine: Engine) -> None:
    writer = GroupWriter(engine)
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(
            pool.map(lambda _: writer.store(svix_id="msg_x", event_type="t", payload=PAYLOAD), range(64))
        )
    assert sum(result is not None for result in results) == 1
    assert rows(engine) == 1


def test_group_writer_concurrent_distinct_events_all_stored(engine: Engine) -> None:
    writer = GroupWriter(engine)
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(
            pool.map(lambda i: writer.store(svix_id=f"msg_{i}", event_type="t", payload=PAYLOAD), range(200))
        )
    assert len(set(results)) == 200 and None not in results
    assert rows(engine) == 200
