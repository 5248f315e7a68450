"""webhook_receiver.group_writer and storage: many requests' events in one INSERT, one commit, written
by the requests' own threads."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from sqlalchemy import Engine, func, select, text

from shared.db import make_engine
from shared.errors import PayloadInvalid
from shared.models import UNDATED_EVENT, WebhookEvent
from shared.settings import load_settings
from webhook_receiver import group_writer, storage
from webhook_receiver.group_writer import GroupWriter, PendingRow, write_batch
from webhook_receiver.storage import EventStore, Row, StorageUnavailable, autocommit

PAYLOAD = json.dumps({"type": "email.sent", "data": {}})
UNSTORABLE = json.dumps({"type": "email.sent", "data": {"s": "a\x00b"}})


@pytest.fixture
def engine(fresh_database_url: str) -> Iterator[Engine]:
    engine = make_engine(load_settings(database_url=fresh_database_url))
    yield autocommit(engine)
    engine.dispose()


def store_events(engine: Engine, rows: Sequence[tuple[str, str, str]]) -> dict[str, uuid.UUID]:
    """:meth:`EventStore.insert` of undated events on a connection of its own."""
    store = EventStore(engine)
    try:
        return store.insert([undated(row) for row in rows])
    finally:
        store.close()


def undated(row: tuple[str, str, str]) -> Row:
    return (*row, UNDATED_EVENT)


def rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(WebhookEvent)) or 0


@pytest.fixture
def store(engine: Engine) -> Iterator[EventStore]:
    store = EventStore(engine)
    yield store
    store.close()


@pytest.fixture
def writer(engine: Engine) -> Iterator[GroupWriter]:
    writer = GroupWriter(engine)
    yield writer
    writer.close()


def pending(svix_id: str, payload: str = PAYLOAD) -> PendingRow:
    return PendingRow(svix_id, "email.sent", payload)


def test_store_events_inserts_copies_of_one_svix_id_once(engine: Engine) -> None:
    stored = store_events(engine, [("msg_a", "t", PAYLOAD), ("msg_a", "t", PAYLOAD), ("msg_b", "t", PAYLOAD)])
    assert sorted(stored) == ["msg_a", "msg_b"]
    assert rows(engine) == 2


def test_store_events_returns_nothing_for_stored_svix_ids(engine: Engine) -> None:
    store_events(engine, [("msg_a", "t", PAYLOAD)])
    assert store_events(engine, [("msg_a", "t", PAYLOAD)]) == {}


def test_write_batch_gives_the_id_to_the_first_copy_only(store: EventStore) -> None:
    batch = [pending("msg_a"), pending("msg_a"), pending("msg_b")]
    write_batch(store, batch)
    results = [row.outcome() for row in batch]
    assert isinstance(results[0], uuid.UUID) and results[1] is None and isinstance(results[2], uuid.UUID)


def test_write_batch_one_unstorable_payload_fails_alone(engine: Engine, store: EventStore) -> None:
    batch = [pending("msg_a"), pending("msg_bad", UNSTORABLE), pending("msg_c")]
    write_batch(store, batch)
    with pytest.raises(PayloadInvalid):
        batch[1].outcome()
    assert batch[0].outcome() is not None and batch[2].outcome() is not None
    assert rows(engine) == 2


def test_group_writer_concurrent_copies_store_one_row(engine: Engine, writer: GroupWriter) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(
            pool.map(lambda _: writer.store(svix_id="msg_x", event_type="t", payload=PAYLOAD), range(64))
        )
    assert sum(result is not None for result in results) == 1
    assert rows(engine) == 1


def test_group_writer_concurrent_distinct_events_all_stored(engine: Engine, writer: GroupWriter) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(
            pool.map(lambda i: writer.store(svix_id=f"msg_{i}", event_type="t", payload=PAYLOAD), range(200))
        )
    assert len(set(results)) == 200 and None not in results
    assert rows(engine) == 200


def test_store_events_takes_the_payload_as_json_text(engine: Engine) -> None:
    store_events(engine, [("msg_a", "email.sent", '{"type": "email.sent", "n": 1e400}')])
    with engine.connect() as connection:
        payload = connection.scalar(select(WebhookEvent.payload).where(WebhookEvent.svix_id == "msg_a"))
    assert payload["type"] == "email.sent"


@pytest.mark.parametrize("payload", ['{"s": "a\\u0000b"}', '{"s": "\\ud800"}', "not json"])
def test_store_events_payload_postgresql_refuses_is_payload_invalid(engine: Engine, payload: str) -> None:
    with pytest.raises(PayloadInvalid):
        store_events(engine, [("msg_a", "t", payload)])
    assert rows(engine) == 0


def test_group_writer_lone_request_writes_in_its_own_thread(engine: Engine, writer: GroupWriter) -> None:
    threads_before = set(threading.enumerate())
    assert writer.store(svix_id="msg_a", event_type="t", payload=PAYLOAD) is not None
    assert set(threading.enumerate()) == threads_before
    assert rows(engine) == 1


class BlockedInserts:
    """Wraps ``EventStore.insert``: records each batch's svix ids; the first call waits for ``release``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[list[str]] = []
        self.first_started = threading.Event()
        self.release = threading.Event()
        insert = EventStore.insert

        def recording(store: EventStore, batch: list[Row]) -> dict[str, uuid.UUID]:
            self.batches.append([row[0] for row in batch])
            if len(self.batches) == 1:
                self.first_started.set()
                self.release.wait(10)
            return insert(store, batch)

        monkeypatch.setattr(EventStore, "insert", recording)


def test_group_writer_rows_arriving_during_a_write_go_in_the_next_statement(
    engine: Engine, writer: GroupWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    inserts = BlockedInserts(monkeypatch)
    with ThreadPoolExecutor(max_workers=6) as pool:
        first = pool.submit(writer.store, svix_id="msg_first", event_type="t", payload=PAYLOAD)
        assert inserts.first_started.wait(10)
        later = [
            pool.submit(writer.store, svix_id=f"msg_{i}", event_type="t", payload=PAYLOAD) for i in range(5)
        ]
        while writer.waiting < 5:
            threading.Event().wait(0.01)
        inserts.release.set()
        assert None not in [first.result(10), *(future.result(10) for future in later)]
    assert inserts.batches[0] == ["msg_first"]
    assert sorted(inserts.batches[1]) == [f"msg_{i}" for i in range(5)] and len(inserts.batches) == 2
    assert rows(engine) == 6


def test_group_writer_row_not_written_in_time_is_503_and_never_written(
    engine: Engine, writer: GroupWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_writer, "WRITE_TIMEOUT_S", 0.2)
    inserts = BlockedInserts(monkeypatch)
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(writer.store, svix_id="msg_first", event_type="t", payload=PAYLOAD)
        assert inserts.first_started.wait(10)
        with pytest.raises(StorageUnavailable):
            writer.store(svix_id="msg_late", event_type="t", payload=PAYLOAD)
        inserts.release.set()
        assert first.result(10) is not None
    assert writer.store(svix_id="msg_next", event_type="t", payload=PAYLOAD) is not None
    assert ["msg_late"] not in inserts.batches and rows(engine) == 2


def test_group_writer_reconnects_after_an_idle_connection_was_lost(
    engine: Engine, writer: GroupWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_writer, "IDLE_RELEASE_S", 0.0)
    writer.store(svix_id="msg_a", event_type="t", payload=PAYLOAD)
    with engine.connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert writer.store(svix_id="msg_b", event_type="t", payload=PAYLOAD) is not None
    assert rows(engine) == 2


def test_event_store_statement_stuck_past_its_timeout_is_storage_unavailable(
    engine: Engine, store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage, "STATEMENT_TIMEOUT_MS", 200)
    with engine.connect() as other:
        # An uncommitted copy of msg_a: ON CONFLICT must wait for that transaction to end.
        other.execute(text("BEGIN"))
        other.execute(
            text("INSERT INTO webhook_events (svix_id, type, payload) VALUES ('msg_a', 't', '{}'::jsonb)")
        )
        with pytest.raises(StorageUnavailable) as raised:
            store.insert([undated(("msg_a", "t", PAYLOAD))])
        other.execute(text("ROLLBACK"))
    assert isinstance(raised.value.__cause__, psycopg.errors.QueryCanceled)
    assert rows(engine) == 0
